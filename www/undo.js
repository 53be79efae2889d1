// Undo and redo of verdicts and box edits: every change of one image is kept
// as that image's verdict state (verdict-state.js) before and after it.

import { verdictState } from './verdict-state.js';

function same(a, b) {
  return (
    a.base === b.base &&
    a.touched === b.touched &&
    JSON.stringify(a.judgements) === JSON.stringify(b.judgements) &&
    JSON.stringify(a.drawn) === JSON.stringify(b.drawn)
  );
}

/**
 * Steps of changes, each `{changes: [{id, before, after}], label}`: one image
 * for an edit, several for an import of labels.
 */
export class UndoStack {
  constructor(limit = 500) {
    this.limit = limit;
    this.done = [];
    this.undone = [];
  }

  /**
   * Records one change of `entry` (`before` taken with verdictState() before it);
   * no-op when nothing changed. Changes with the same `merge` key on the same
   * image less than a second apart are one step (e.g. nudges with the keys).
   */
  push(entry, before, label, merge = null) {
    const after = verdictState(entry);
    if (same(before, after)) return false;
    const last = this.done.at(-1);
    const now = Date.now();
    if (merge && last && last.merge === merge && last.changes.length === 1 && last.changes[0].id === entry.id && now - last.time < 1000 && !this.undone.length) {
      last.changes[0].after = after;
      last.time = now;
      return true;
    }
    this.record([{ id: entry.id, before, after }], label, merge, now);
    return true;
  }

  /**
   * Records changes of several images as one step (`changes`: [{entry,
   * before}], `before` taken with verdictState()); images that did not change
   * are left out, and nothing is recorded when none did.
   */
  pushGroup(changes, label) {
    const changed = changes
      .map(({ entry, before }) => ({ id: entry.id, before, after: verdictState(entry) }))
      .filter((c) => !same(c.before, c.after));
    if (!changed.length) return false;
    this.record(changed, label, null, Date.now());
    return true;
  }

  record(changes, label, merge, time) {
    this.done.push({ changes, label, merge, time });
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
  }

  /** The change to undo, moved to the redo side; null when none. */
  undo() {
    const step = this.done.pop();
    if (step) this.undone.push(step);
    return step || null;
  }

  redo() {
    const step = this.undone.pop();
    if (step) this.done.push(step);
    return step || null;
  }

  get canUndo() {
    return this.done.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  clear() {
    this.done = [];
    this.undone = [];
  }
}
