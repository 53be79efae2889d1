// The keyboard: what each row of the key map (shortcuts.js) does, the key
// handler, and the list of shortcuts shown by `?`.

import { normalise } from './boxes.js';
import { shortcutFor } from './shortcuts.js';
import { state, ui, images } from './state.js';
import { announce } from './messages.js';
import { className, shownOf, setJudgement, confirmAll, undoRedo, boxOf, applyBox, addDrawn, removeDrawn, judgementKind } from './verdicts.js';
import { renderAll, select } from './image-list.js';
import { MIN_BOX, layoutCanvas, zoomBy, zoomFit, renderCanvas } from './canvas.js';
import { persist } from './page-project.js';

/** Opens the list of keyboard shortcuts. */
export function showShortcuts() {
  if (!ui.shortcutsDialog.open) ui.shortcutsDialog.showModal();
}

/** The boxes of the current image in list order: shown (by score), then drawn. */
function boxOrder(entry) {
  if (!entry || !entry.base) return [];
  return [
    ...shownOf(entry).map((index) => ({ kind: 'shown', index })),
    ...entry.drawn.map((_, index) => ({ kind: 'drawn', index })),
  ];
}

function sameSel(a, b) {
  return Boolean(a && b) && a.kind === b.kind && a.index === b.index;
}

/** Selects a box and says which (for screen readers). */
function selectBox(entry, sel) {
  state.selection = sel;
  renderAll();
  if (!sel) return;
  const order = boxOrder(entry);
  const k = order.findIndex((o) => sameSel(o, sel));
  const b = boxOf(entry, sel);
  const verdict = sel.kind === 'drawn' ? 'drawn' : judgementKind(entry, sel.index) === 'unjudged' ? 'not judged' : judgementKind(entry, sel.index);
  announce(`Box ${k + 1} of ${order.length}: ${className(b.class)}, ${verdict}.`);
  const item = ui.boxList.querySelector('li.selected');
  if (item) item.scrollIntoView({ block: 'nearest' });
}

/** The first shown box not judged yet after `from` in list order (wrapping), or null. */
function nextUnjudged(entry, from = null) {
  const order = boxOrder(entry).filter((o) => o.kind === 'shown');
  const start = from ? order.findIndex((o) => sameSel(o, from)) + 1 : 0;
  for (let n = 0; n < order.length; n++) {
    const o = order[(start + n) % order.length];
    if (!entry.judgements.has(o.index)) return o;
  }
  return null;
}

/** C and X: judge the selected box (else the first not judged yet), then select the next one not judged. */
function judgeByKey(entry, kind) {
  let sel = state.selection;
  if (!sel) sel = nextUnjudged(entry);
  if (!sel) {
    announce('Every shown box is judged.');
    return;
  }
  if (sel.kind === 'drawn') {
    state.selection = sel;
    announce('A drawn box is already yours: Delete removes it.');
    return;
  }
  const prior = entry.judgements.get(sel.index);
  // Confirming a corrected box keeps the correction.
  if (!(kind === 'confirmed' && prior && prior.kind === 'corrected')) setJudgement(entry, sel.index, { kind });
  const next = nextUnjudged(entry, sel);
  selectBox(entry, next || sel);
}

/** The class a number key means: the class of that name, else the n-th target class (0 = the 10th). */
function classForKey(key) {
  const byName = state.classNames.indexOf(key);
  if (byName >= 0) return byName;
  const n = key === '0' ? 10 : Number(key);
  const options = [...ui.drawClass.options];
  return n >= 1 && n <= options.length ? Number(options[n - 1].value) : -1;
}

function setClassByKey(entry, key) {
  const cls = classForKey(key);
  if (cls < 0) {
    announce(`No class for the key ${key}.`);
    return;
  }
  const b = entry && boxOf(entry, state.selection);
  if (!b) {
    ui.drawClass.value = String(cls);
    persist();
    announce(`New boxes get the class ${className(cls)}.`);
    return;
  }
  if (state.selection.kind === 'shown') {
    const d = entry.base.candidates[state.selection.index];
    if (cls === d.class && judgementKind(entry, state.selection.index) !== 'corrected') return;
  } else if (cls === b.class) {
    return;
  }
  applyBox(entry, state.selection, { ...b.bbox }, cls, { label: 'change class' });
  announce(`Class ${className(cls)}.`);
}

/** Arrow keys on a selected box: move it, or with Alt resize it (right and bottom edge). */
function nudge(entry, key, step, resize) {
  const b = boxOf(entry, state.selection);
  if (!b) return;
  const dx = key === 'ArrowLeft' ? -step : key === 'ArrowRight' ? step : 0;
  const dy = key === 'ArrowUp' ? -step : key === 'ArrowDown' ? step : 0;
  const W = entry.width;
  const H = entry.height;
  let box;
  if (resize) {
    box = {
      ...b.bbox,
      x1: Math.max(b.bbox.x0 + MIN_BOX, Math.min(W, b.bbox.x1 + dx)),
      y1: Math.max(b.bbox.y0 + MIN_BOX, Math.min(H, b.bbox.y1 + dy)),
    };
  } else {
    const mx = Math.max(-b.bbox.x0, Math.min(W - b.bbox.x1, dx));
    const my = Math.max(-b.bbox.y0, Math.min(H - b.bbox.y1, dy));
    box = { x0: b.bbox.x0 + mx, y0: b.bbox.y0 + my, x1: b.bbox.x1 + mx, y1: b.bbox.y1 + my };
  }
  if (box.x0 === b.bbox.x0 && box.y0 === b.bbox.y0 && box.x1 === b.bbox.x1 && box.y1 === b.bbox.y1) return;
  applyBox(entry, state.selection, box, b.class, {
    label: resize ? 'resize box' : 'move box',
    merge: `${resize ? 'resize' : 'move'}-${state.selection.kind}-${state.selection.index}`,
  });
}

/** B: a new drawn box in the middle of the view, selected, to move and resize with the keys. */
function addBoxByKey(entry) {
  layoutCanvas();
  const w = ui.canvasWrap.clientWidth / state.viewTf.scale;
  const h = ui.canvasWrap.clientHeight / state.viewTf.scale;
  const side = Math.max(MIN_BOX * 4, Math.min(w, h, entry.width, entry.height) / 4);
  const cx = Math.min(entry.width - side / 2, Math.max(side / 2, state.zoom.cx));
  const cy = Math.min(entry.height - side / 2, Math.max(side / 2, state.zoom.cy));
  const bbox = normalise({ x0: cx - side / 2, y0: cy - side / 2, x1: cx + side / 2, y1: cy + side / 2 }, entry.width, entry.height);
  addDrawn(entry, bbox, Number(ui.drawClass.value) || 0);
  announce(`Added a ${className(Number(ui.drawClass.value) || 0)} box in the middle: arrows move it, Alt and arrows resize it.`);
}

/** What each row of the key map (shortcuts.js) does, by its `action`. */
const KEY_ACTIONS = {
  stepImage: (ev) => select(state.current + (ev.key === 'ArrowLeft' || ev.key === 'PageUp' ? -1 : 1)),
  endImage: (ev) => select(ev.key === 'Home' ? 0 : images.length - 1),
  stepBox: (ev, entry) => {
    const order = boxOrder(entry);
    if (!order.length) return;
    const k = order.findIndex((o) => sameSel(o, state.selection));
    const next = k < 0 ? (ev.shiftKey ? order.length - 1 : 0) : (k + (ev.shiftKey ? -1 : 1) + order.length) % order.length;
    selectBox(entry, order[next]);
  },
  confirm: (ev, entry) => judgeByKey(entry, 'confirmed'),
  reject: (ev, entry) => judgeByKey(entry, 'rejected'),
  confirmAll: () => confirmAll(),
  classKey: (ev, entry) => setClassByKey(entry, ev.key),
  remove: (ev, entry) => {
    if (state.selection && state.selection.kind === 'drawn') {
      removeDrawn(entry, state.selection.index);
      announce('Drawn box removed.');
    } else if (state.selection && state.selection.kind === 'shown') {
      judgeByKey(entry, 'rejected');
    }
  },
  nudge: (ev, entry) => nudge(entry, ev.key, ev.shiftKey ? 10 : 1, ev.altKey),
  deselect: () => {
    state.drag = null;
    state.selection = null;
    renderAll();
  },
  toggleDraw: () => {
    state.mode = state.mode === 'draw' ? 'edit' : 'draw';
    document.querySelector(`input[name="mode"][value="${state.mode}"]`).checked = true;
    renderCanvas();
    announce(state.mode === 'draw' ? 'Drawing: drag on the image to draw a missed box.' : 'Selecting and editing boxes.');
  },
  addBox: (ev, entry) => addBoxByKey(entry),
  undo: (ev) => undoRedo(ev.shiftKey ? 'redo' : 'undo'),
  redo: () => undoRedo('redo'),
  zoomIn: () => zoomBy(1.5),
  zoomOut: () => zoomBy(1 / 1.5),
  zoomFit: () => zoomFit(),
  help: () => showShortcuts(),
};

/** Runs the key map's action for a key pressed outside fields and dialogs; Space held pans. */
export function onKeyDown(ev) {
  if (document.querySelector('dialog[open]')) return;
  const t = ev.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  // Space held pans with the mouse (a hold, not a shortcut of the key map).
  if (ev.key === ' ' && !(ev.ctrlKey || ev.metaKey) && !(t && (t.tagName === 'BUTTON' || t.tagName === 'A' || t.tagName === 'SUMMARY'))) {
    if (!state.spaceHeld) {
      state.spaceHeld = true;
      renderCanvas();
    }
    ev.preventDefault();
    return;
  }
  const entry = images[state.current];
  const editable = Boolean(entry && entry.base && !state.locked && state.view === 'review');
  const row = shortcutFor(ev, { editable, selected: editable && Boolean(boxOf(entry, state.selection)) });
  if (!row) return;
  KEY_ACTIONS[row.action](ev, entry);
  if (!row.keepDefault) ev.preventDefault();
}
