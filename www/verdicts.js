// Verdicts: which boxes are shown, an image's verdicts and when it is
// reviewed, every edit as one undo step, undo and redo, sending reviewed
// images to the session, the target classes.

import { rgbaOf } from './images.js';
import { verdictState, applyVerdictState } from './verdict-state.js';
import { TargetClassPicker } from './target-classes.js';
import { state, $, ui, images, undoStack } from './state.js';
import { messageOf, sentence, showError, idleStatus, announce } from './messages.js';
import { withSession, refreshStats } from './session.js';
import { updateThumb, updateAllThumbs, renderCaption, renderAll, select } from './image-list.js';
import { option } from './box-list.js';
import { persist } from './page-project.js';

/** The name of class `c`. */
export function className(c) {
  return state.classNames[c] ?? `class ${c}`;
}

function isTarget(c) {
  return state.targetClasses === null || state.targetClasses.includes(c);
}

/** The shown boxes of each candidate list at the threshold they were last asked at. */
const shownCache = new WeakMap();

/**
 * The indices of `candidates` shown at the current threshold (score at or
 * above it, then class-aware NMS: the wasm module's rule), by descending
 * score, of the target classes.
 */
export function shownOf(entry, candidates = entry.base && entry.base.candidates) {
  if (!candidates) return [];
  let cached = shownCache.get(candidates);
  if (!cached || cached.threshold !== state.threshold) {
    cached = { threshold: state.threshold, indices: Array.from(state.wasm.shownIndices(candidates, state.threshold)) };
    shownCache.set(candidates, cached);
  }
  return cached.indices.filter((i) => isTarget(candidates[i].class));
}

/** An image's verdicts as the wasm module takes them: its shown boxes with their judgements, its drawn boxes, the reviewed classes. */
export function verdictsOf(entry) {
  const idx = shownOf(entry);
  const verdicts = {
    shown: idx.map((i) => ({ detection: entry.base.candidates[i], judgement: entry.judgements.get(i) ?? null })),
    drawn: entry.drawn.map((d) => ({ bbox: { ...d.bbox }, class: d.class })),
  };
  if (state.targetClasses !== null) verdicts.reviewedClasses = [...state.targetClasses];
  return verdicts;
}

/** Whether the image is reviewed: predicted, touched by the user, every shown box judged. */
export function isReviewed(entry) {
  return Boolean(entry.base) && entry.touched && shownOf(entry).every((i) => entry.judgements.has(i));
}

/** The image's categories from its verdicts (the wasm module's rule); none while not reviewed. */
export function localCategories(entry) {
  return isReviewed(entry) ? Array.from(state.wasm.imageCategories(verdictsOf(entry)), String) : [];
}

/** The boxes the user vouches for (confirmed, corrected, drawn) and the rejected ones. */
export function userBoxes(entry) {
  const labels = [];
  const rejected = [];
  if (!entry.base) return { labels, rejected };
  for (const i of shownOf(entry)) {
    const d = entry.base.candidates[i];
    const j = entry.judgements.get(i);
    if (!j) continue;
    if (j.kind === 'confirmed') labels.push({ bbox: d.bbox, class: d.class });
    else if (j.kind === 'corrected') labels.push(j.label);
    else if (j.kind === 'rejected') rejected.push({ bbox: d.bbox, class: d.class });
  }
  for (const d of entry.drawn) labels.push(d);
  return { labels, rejected };
}

/** Sends an image's verdicts to the session when it is reviewed; removes it when no longer. */
export function scheduleSync(entry) {
  if (entry.syncing) {
    entry.syncAgain = true;
    return entry.syncing;
  }
  entry.syncing = withSession(async (s) => {
    do {
      entry.syncAgain = false;
      await syncOnce(s, entry);
    } while (entry.syncAgain);
  })
    .catch((e) => showError(`Could not update the verdicts of “${entry.name}”`, e))
    .finally(() => {
      entry.syncing = null;
      updateThumb(entry);
      if (images[state.current] === entry) renderCaption();
      idleStatus();
      refreshStats();
    });
  return entry.syncing;
}

async function syncOnce(s, entry) {
  if (isReviewed(entry)) {
    const verdicts = verdictsOf(entry);
    const key = JSON.stringify(verdicts);
    if (entry.inSession && key === entry.syncedKey) return;
    try {
      const rgba = rgbaOf(entry.bitmap);
      // The 7th argument, the display threshold, tells the rule which
      // candidates were below what the user saw.
      const res = await s.setSample(entry.id, rgba, entry.width, entry.height, entry.base.candidates, verdicts, state.threshold);
      entry.categories = res && Array.isArray(res.categories) ? res.categories : localCategories(entry);
      entry.inSession = true;
      entry.syncedKey = key;
      entry.error = null;
    } catch (e) {
      entry.error = sentence(messageOf(e));
      showError(`The verdicts on “${entry.name}” were not accepted`, e);
      if (entry.inSession) {
        await s.removeSample(entry.id);
        entry.inSession = false;
      }
      entry.categories = [];
      entry.syncedKey = null;
    }
  } else if (entry.inSession) {
    await s.removeSample(entry.id);
    entry.inSession = false;
    entry.categories = [];
    entry.syncedKey = null;
    entry.error = null;
  } else {
    entry.error = null;
  }
}

/** After any change of an image's verdicts: redraw, tell the session, save. */
export function verdictsChanged(entry) {
  updateThumb(entry);
  renderAll();
  scheduleSync(entry);
  persist(entry);
  updateUndoButtons();
}

/**
 * Every verdict and box edit goes through here: `fn` changes the entry, the
 * change becomes one undo step (`merge`: consecutive edits with the same key
 * within a moment are one step, e.g. key nudges).
 */
function edit(entry, label, fn, { merge = null, touch = true } = {}) {
  const before = verdictState(entry);
  fn();
  if (touch) entry.touched = true;
  undoStack.push(entry, before, label, merge);
  verdictsChanged(entry);
}

/** Sets (or clears, with null) a shown box's judgement, as one undo step. */
export function setJudgement(entry, index, judgement) {
  edit(entry, judgement ? `${judgement.kind} box` : 'clear verdict', () => {
    if (judgement) entry.judgements.set(index, judgement);
    else entry.judgements.delete(index);
  });
}

/** Confirms every shown box of the current image not judged yet. */
export function confirmAll() {
  const entry = images[state.current];
  if (!entry || state.locked || !entry.base || state.view !== 'review') return;
  edit(entry, 'confirm all', () => {
    for (const i of shownOf(entry)) {
      if (!entry.judgements.has(i)) entry.judgements.set(i, { kind: 'confirmed' });
    }
  });
  announce('Every shown box is judged.');
}

/** Enables the Undo and Redo buttons and names the step each would take back. */
export function updateUndoButtons() {
  ui.undo.disabled = state.locked || !undoStack.canUndo;
  ui.redo.disabled = state.locked || !undoStack.canRedo;
  ui.undo.title = undoStack.canUndo ? `Undo ${undoStack.done.at(-1).label} (Ctrl+Z)` : 'Undo (Ctrl+Z)';
  ui.redo.title = undoStack.canRedo ? `Redo ${undoStack.undone.at(-1).label} (Ctrl+Shift+Z or Ctrl+Y)` : 'Redo (Ctrl+Shift+Z or Ctrl+Y)';
}

/** Undoes or redoes the last change, on whichever image it was made (that image is shown). */
export function undoRedo(which) {
  if (state.locked) return;
  const step = which === 'undo' ? undoStack.undo() : undoStack.redo();
  if (!step) return;
  const changed = [];
  for (const change of step.changes) {
    const entry = images.find((e) => e.id === change.id);
    if (!entry) continue;
    applyVerdictState(entry, which === 'undo' ? change.before : change.after);
    changed.push(entry);
  }
  if (!changed.length) return;
  // The changed image is shown (the current one when a step changed several).
  if (!changed.includes(images[state.current])) select(images.indexOf(changed[0]));
  if (!selectionValid(images[state.current])) state.selection = null;
  for (const entry of changed) verdictsChanged(entry);
  announce(`${which === 'undo' ? 'Undone' : 'Redone'}: ${step.label}.`);
}

function selectionValid(entry) {
  if (!state.selection || !entry) return false;
  if (state.selection.kind === 'drawn') return state.selection.index < entry.drawn.length;
  return shownOf(entry).includes(state.selection.index);
}

/** Box and class of a selectable box in review mode. */
export function boxOf(entry, sel) {
  if (!sel) return null;
  if (sel.kind === 'drawn') {
    const d = entry.drawn[sel.index];
    return d ? { bbox: d.bbox, class: d.class } : null;
  }
  const d = entry.base && entry.base.candidates[sel.index];
  if (!d) return null;
  const j = entry.judgements.get(sel.index);
  return j && j.kind === 'corrected' ? { bbox: j.label.bbox, class: j.label.class } : { bbox: d.bbox, class: d.class };
}

/** Gives a box another place or class: a drawn box changes, a shown box becomes corrected. */
export function applyBox(entry, sel, bbox, cls, { label = 'box edit', merge = null } = {}) {
  edit(
    entry,
    label,
    () => {
      if (sel.kind === 'drawn') {
        entry.drawn[sel.index] = { bbox, class: cls };
      } else {
        entry.judgements.set(sel.index, { kind: 'corrected', label: { bbox, class: cls } });
      }
    },
    { merge },
  );
}

/** Adds a drawn box (a missed object) and selects it. */
export function addDrawn(entry, bbox, cls) {
  edit(entry, 'drawn box', () => {
    entry.drawn.push({ bbox, class: cls });
    state.selection = { kind: 'drawn', index: entry.drawn.length - 1 };
  });
}

/** Removes drawn box `index`; a selected later drawn box stays selected. */
export function removeDrawn(entry, index) {
  edit(entry, 'remove drawn box', () => {
    entry.drawn.splice(index, 1);
    if (state.selection && state.selection.kind === 'drawn') {
      if (state.selection.index === index) state.selection = null;
      else if (state.selection.index > index) state.selection = { kind: 'drawn', index: state.selection.index - 1 };
    }
  });
}

/** The kind of candidate `i`'s judgement, or 'unjudged'. */
export function judgementKind(entry, i) {
  const j = entry.judgements.get(i);
  return j ? j.kind : 'unjudged';
}

/** Makes the current image's latest prediction the one its verdicts refer to: the verdicts on shown boxes start over, drawn boxes stay. */
export function rereview() {
  const entry = images[state.current];
  if (!entry || state.locked || !entry.latest) return;
  state.selection = null;
  state.view = 'review';
  document.querySelector('input[name="view"][value="review"]').checked = true;
  edit(
    entry,
    'review new predictions',
    () => {
      entry.base = entry.latest;
      entry.judgements = new Map();
      entry.touched = entry.drawn.length > 0;
    },
    { touch: false },
  );
}

/** The target-classes picker; a change of the choice reaches the verdicts, the session and the project. */
export const classPicker = new TargetClassPicker(
  { list: $('class-list'), filter: $('class-filter'), all: $('classes-all'), none: $('classes-none'), summary: $('target-summary') },
  (chosen) => {
    setTargetClasses(chosen);
    for (const e of images) if (e.base && (e.inSession || isReviewed(e))) scheduleSync(e);
    persist();
    refreshStats();
  },
);

/** Shows (and trains) only the classes `chosen` (indices; null: every class). */
export function setTargetClasses(chosen) {
  state.targetClasses = chosen === null ? null : [...new Set(chosen)].sort((a, b) => a - b);
  classPicker.set(state.targetClasses, false);
  const keep = ui.drawClass.value;
  ui.drawClass.replaceChildren(...state.classNames.map((n, c) => option(c, n)).filter((o) => isTarget(Number(o.value))));
  if ([...ui.drawClass.options].some((o) => o.value === keep)) ui.drawClass.value = keep;
  const entry = images[state.current];
  if (state.selection && state.selection.kind === 'shown' && entry && !shownOf(entry).includes(state.selection.index)) state.selection = null;
  updateAllThumbs();
  renderAll();
}
