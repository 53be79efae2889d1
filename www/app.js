// veritune's page: open images, judge the detector's boxes, train in the tab,
// download the adapted weights. Everything stays on this machine.
//
// URL flags: ?backend=cpu asks the session for the CPU backend;
// ?project=new|last|<id> opens that project without asking (the flag is then
// removed from the address, so a reload asks again); ?model=<id> (an id of
// models.json) is the model of a new project.

import { countMatches, normalise, area } from './boxes.js';
import { LineChart } from './plot.js';
import { decodeImage, rgbaOf, drawThumbnail, filesFromDrop, looksLikeImage, displayName } from './images.js';
import { webgpuProblem } from './webgpu.js';
import { Engine } from './engine.js';
import { openStore, Store, OpenProject, imageRecord, verdictsOfRecord, isQuotaError, storageUse, formatBytes, FILE_EXTENSION } from './project.js';
import { showProjects } from './projects-dialog.js';
import { UndoStack, snapshot, restore } from './undo.js';
import { renderShortcuts, shortcutFor } from './shortcuts.js';
import { CATALOG_URL, EARLIER_MODEL, checkCatalog, pickModel } from './models.js';
import { TargetClassPicker } from './target-classes.js';

const params = new URLSearchParams(location.search);
const PREFER_WEBGPU = params.get('backend') !== 'cpu';
/** The positive whole number a flag of the address gives, else Infinity (no limit). */
const limitParam = (name) => (/^[1-9][0-9]*$/.test(params.get(name) ?? '') ? Number(params.get(name)) : Infinity);
/** `?samples=N` opens only the model's first N sample images (a quicker start); all of them otherwise. */
const SAMPLE_LIMIT = limitParam('samples');
/**
 * `?history=N` starts the history library with only the first N sample history
 * images (quicker training checks on a slow device); all of them otherwise.
 */
const HISTORY_LIMIT = limitParam('history');
/** The wasm module, and the chosen model's files (set at start from models.json). */
const ASSETS = { pkg: './pkg/veritune.js', model: '', transfer: '', history: '' };

/** The longer side of the working image; boxes are in its pixels. */
const MAX_SIDE = 1024;
/** Smallest drawn or corrected box side, in working-image pixels. */
const MIN_BOX = 3;
const HANDLE_PX = 9;
const COLORS = {
  unjudged: '#f59e0b',
  confirmed: '#16a34a',
  rejected: '#dc2626',
  corrected: '#2563eb',
  drawn: '#c026d3',
  now: '#f97316',
  label: '#e5e7eb',
};

/** Download names of the weights per format (`Session.exportWeights`). */
const WEIGHTS_FILES = { burnpack: 'veritune-adapted.bpk', safetensors: 'veritune-adapted.safetensors' };
/** Download names of the labels per format (`Session.exportLabels`): COCO is one file, the others a ZIP archive. */
const LABEL_FILES = { coco: 'veritune-labels-coco.json', yolo: 'veritune-labels-yolo.zip', voc: 'veritune-labels-voc.zip' };
/** Files a label import reads from a picked folder. */
const LABEL_FILE = /\.(json|txt|xml)$/i;

/** sessionStorage key: the project to open after a reload (an id or 'new'). */
const OPEN_KEY = 'veritune.open';
/** Zoom range, relative to fitting the image in the view. */
const ZOOM_MIN = 1;
const ZOOM_MAX = 40;

const $ = (id) => document.getElementById(id);
const ui = {
  badge: $('backend-badge'),
  projectsButton: $('projects-button'),
  projectName: $('project-name'),
  saveState: $('save-state'),
  shortcutsButton: $('shortcuts-button'),
  shortcutsDialog: $('shortcuts-dialog'),
  undo: $('undo'),
  redo: $('redo'),
  zoomIn: $('zoom-in'),
  zoomOut: $('zoom-out'),
  zoomFit: $('zoom-fit'),
  zoomValue: $('zoom-value'),
  canvasLive: $('canvas-live'),
  exportProject: $('export-project'),
  weightsInput: $('weights-input'),
  status: $('status'),
  statusProgress: $('status-progress'),
  statusCancel: $('status-cancel'),
  errors: $('errors'),
  workspace: $('workspace'),
  fileInput: $('file-input'),
  folderInput: $('folder-input'),
  threshold: $('threshold'),
  thresholdValue: $('threshold-value'),
  drawClass: $('draw-class'),
  modelChoice: $('model-choice'),
  modelAbout: $('model-about'),
  historyAbout: $('history-about'),
  canvas: $('image-canvas'),
  canvasWrap: $('canvas-wrap'),
  overlay: $('canvas-overlay'),
  prev: $('prev-image'),
  next: $('next-image'),
  imageName: $('image-name'),
  imageState: $('image-state'),
  viewChoice: $('view-choice'),
  thumbs: $('thumbs'),
  confirmAll: $('confirm-all'),
  rereview: $('rereview'),
  boxList: $('box-list'),
  counts: {
    correct: $('count-correct'),
    missed: $('count-missed'),
    false: $('count-false'),
    samples: $('count-samples'),
    history: $('count-history'),
  },
  epochs: $('epochs'),
  untilHonored: $('until-honored'),
  rule: $('rule'),
  batchSize: $('batch-size'),
  learningRate: $('learning-rate'),
  updateHistory: $('update-history'),
  freezeBackbone: $('freeze-backbone'),
  train: $('train'),
  cancelTrain: $('cancel-train'),
  trainProgress: $('train-progress'),
  trainStatus: $('train-status'),
  changesPanel: $('changes-panel'),
  changesSummary: $('changes-summary'),
  fidelitySummary: $('fidelity-summary'),
  notHonored: $('not-honored'),
  changesBody: document.querySelector('#changes-table tbody'),
  changesTable: $('changes-table'),
  exportButton: $('export'),
  weightsFormat: $('weights-format'),
  labelFormat: $('label-format'),
  exportLabels: $('export-labels'),
  labelsInput: $('labels-input'),
  labelsFolderInput: $('labels-folder-input'),
  importReport: $('import-report'),
};

// ---------------------------------------------------------------- state

/** The engine: the wasm session in its worker (www/engine.js). */
let session = null;
/** The wasm module on the page, for its rules that need no model (which boxes are shown, checks). */
let wasm = null;
/** The session's current weights as last read (burnpack bytes): where a CPU session after a lost GPU starts from. */
let currentWeights = null;
/** Why the GPU device was lost; '' while it is not. */
let gpuLost = '';
/** What the session said about itself at start (read once: no calls while it is busy). */
let facts = { backend: '', notice: '', baseModelHash: '', inputSize: 0 };
let classNames = [];
/** The classes the user reviews (sorted indices), or null for every class. */
let targetClasses = null;
/** The model the page runs (an entry of models.json). */
let model = null;
/** What the history samples are, as their index says (shown beside the model). */
let historyAbout = '';
let threshold = Number(ui.threshold.value);
let mode = 'edit'; // 'edit' | 'draw'
let view = 'review'; // 'review' | 'now'
let locked = true; // no editing (starting, training)
let training = false;
let nextId = 1;
/** @type {ImageEntry[]} */
const images = [];
let current = -1;
/** Selected box on the current image: {kind: 'shown'|'drawn', index} */
let selection = null;
let drag = null;
const runs = [];
let historyReady = Promise.resolve();
let trainAttempts = 0;
/** The project store (null when this browser cannot save) and the project open in this tab. */
let store = null;
/** @type {OpenProject|null} */
let project = null;
const undoStack = new UndoStack();
/** Zoom relative to fit, and the image point at the centre of the view (null: the image's centre). */
let zoom = { k: 1, cx: null, cy: null };
let spaceHeld = false;
/**
 * How many times the weights changed (training runs, loaded weight files, a
 * project's saved weights that could not be loaded): every prediction
 * carries it as its `model`, so that a resumed project reuses the
 * predictions of its current weights instead of predicting every image again.
 */
let weightsVersion = 0;

/**
 * @typedef {object} ImageEntry
 * @property {string} id
 * @property {string} name
 * @property {'sample'|'user'} source
 * @property {Blob} file  the image file's bytes, as opened (saved in the project)
 * @property {ImageBitmap} bitmap
 * @property {number} width
 * @property {number} height
 * @property {{candidates: object[], model: number}|null} base  prediction the verdicts refer to
 *   (`model`: the `weightsVersion` of the weights that made it)
 * @property {{candidates: object[], model: number}|null} latest  latest prediction of the current model
 * @property {boolean} stale  latest is from an older model
 * @property {Map<number, object>} judgements  candidate index -> judgement
 * @property {{bbox: object, class: number}[]} drawn
 * @property {boolean} touched  the user has given a verdict on this image
 * @property {boolean} inSession
 * @property {string[]} categories
 * @property {string|null} syncedKey
 * @property {string|null} error
 */

// ---------------------------------------------------------------- messages

/** The page's phase for tests and styling; a crash is final. */
function setPhase(phase) {
  if (document.body.dataset.phase === 'failed' && crashMessage) return;
  document.body.dataset.phase = phase;
}

function messageOf(e) {
  if (e instanceof Error) return e.message || String(e);
  if (typeof e === 'string') return e;
  if (e && typeof e.message === 'string') return e.message;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

function sentence(text) {
  const t = String(text).trim();
  if (!t) return 'Something went wrong.';
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** Shows an error as a readable sentence in the alert area (never only in the console). */
function showError(context, e) {
  const text = e === undefined ? sentence(context) : `${context}: ${sentence(messageOf(e))}`;
  // After a crash every pending call fails with the same message: say it once.
  if (crashMessage && text !== sentence(crashMessage) && text.includes(crashMessage)) return;
  const last = ui.errors.lastElementChild;
  if (last && last.querySelector('p').textContent === text) return;
  const item = document.createElement('div');
  item.className = 'error';
  const p = document.createElement('p');
  p.textContent = text;
  const close = document.createElement('button');
  close.type = 'button';
  close.textContent = '×';
  close.setAttribute('aria-label', 'Dismiss this error');
  close.addEventListener('click', () => item.remove());
  item.append(p, close);
  ui.errors.append(item);
  while (ui.errors.children.length > 12) ui.errors.firstElementChild.remove();
  ui.errors.scrollTop = ui.errors.scrollHeight;
}

window.addEventListener('error', (ev) => {
  showError('Unexpected error in the page', ev.error || ev.message);
});
window.addEventListener('unhandledrejection', (ev) => {
  showError('Unexpected error in the page', ev.reason);
});

let statusCancel = null;
/** The status line; `progress` in [0, 1] shows a bar, `cancel` a Stop button. */
function setStatus(text, { progress = null, cancel = null } = {}) {
  ui.status.textContent = text;
  ui.status.title = text;
  if (progress === null) {
    ui.statusProgress.hidden = true;
  } else {
    ui.statusProgress.hidden = false;
    ui.statusProgress.value = Math.max(0, Math.min(1, progress));
  }
  statusCancel = cancel;
  ui.statusCancel.hidden = !cancel;
}
ui.statusCancel.addEventListener('click', () => {
  if (statusCancel) statusCancel();
});

/** Why `count` training steps changed nothing, and what to do about it. */
function skippedSteps(count) {
  return `${count} step${count === 1 ? ' was' : 's were'} skipped because the loss or a gradient was not a finite number; ` +
    'the weights from before each were kept. If it happens often, lower the learning rate.';
}

/** What the last opening of files left to say (skipped files), shown until the next one. */
let openNote = '';

function idleStatus() {
  if (training || crashMessage) return;
  const n = images.length;
  const reviewed = images.filter((e) => e.inSession).length;
  setStatus(
    openNote +
    (n
      ? `${n} image${n === 1 ? '' : 's'} open, ${reviewed} reviewed. Judge the boxes, then press Train.`
      : 'Open images to begin.'),
  );
}

// ---------------------------------------------------------------- session access

// The session answers one call at a time, in order: every session call goes
// through this queue (cancel() is the one exception).
let chain = Promise.resolve();
// A crash (a Rust panic in the engine's worker or in the page's module) calls
// globalThis.__veritunePanic, which rejects this, and every session call
// races against it so nothing waits forever.
let crashWith = null;
const crashed = new Promise((_, reject) => (crashWith = reject));
crashed.catch(() => {});
let crashMessage = '';

function withSession(fn) {
  const p = chain.then(() => (crashMessage ? Promise.reject(new Error(crashMessage)) : Promise.race([fn(session), crashed])));
  chain = p.catch(() => {});
  return p;
}

globalThis.__veritunePanic = (message) => {
  if (crashMessage) return;
  crashMessage = `${sentence(String(message))} Reload the page to start again (your images were not sent anywhere)`;
  crashWith(new Error(crashMessage));
  showError(crashMessage);
  training = false;
  setPhase('failed');
  setStatus('The detector stopped working; reload the page.');
  setLocked(true);
  ui.train.disabled = true;
  ui.exportButton.disabled = true;
  ui.exportLabels.disabled = true;
  ui.cancelTrain.disabled = true;
};

function normalisePrediction(result) {
  const candidates = Array.isArray(result && result.candidates) ? result.candidates : [];
  const shown = Array.isArray(result && result.shown) ? result.shown : [];
  // The shown boxes are a subset of the candidates; keep both consistent.
  const all = candidates.length ? candidates : shown;
  return { candidates: all.map((d) => ({ bbox: { ...d.bbox }, class: d.class, score: d.score })) };
}

async function refreshStats() {
  try {
    const s = await withSession((s) => s.stats());
    ui.counts.correct.textContent = String(s.correct);
    ui.counts.missed.textContent = String(s.missed);
    ui.counts.false.textContent = String(s.falseDetections);
    ui.counts.samples.textContent = String(s.samples);
    ui.counts.history.textContent = String(s.history);
  } catch (e) {
    showError('Could not read the sample counts', e);
  }
}

// ---------------------------------------------------------------- verdicts

function className(c) {
  return classNames[c] ?? `class ${c}`;
}

function isTarget(c) {
  return targetClasses === null || targetClasses.includes(c);
}

/** The shown boxes of each candidate list at the threshold they were last asked at. */
const shownCache = new WeakMap();

/**
 * The indices of `candidates` shown at the current threshold (score at or
 * above it, then class-aware NMS: the wasm module's rule), by descending
 * score, of the target classes.
 */
function shownOf(entry, candidates = entry.base && entry.base.candidates) {
  if (!candidates) return [];
  let cached = shownCache.get(candidates);
  if (!cached || cached.threshold !== threshold) {
    cached = { threshold, indices: Array.from(wasm.shownIndices(candidates, threshold)) };
    shownCache.set(candidates, cached);
  }
  return cached.indices.filter((i) => isTarget(candidates[i].class));
}

function verdictsOf(entry) {
  const idx = shownOf(entry);
  const verdicts = {
    shown: idx.map((i) => ({ detection: entry.base.candidates[i], judgement: entry.judgements.get(i) ?? null })),
    drawn: entry.drawn.map((d) => ({ bbox: { ...d.bbox }, class: d.class })),
  };
  if (targetClasses !== null) verdicts.reviewed_classes = [...targetClasses];
  return verdicts;
}

function isReviewed(entry) {
  return Boolean(entry.base) && entry.touched && shownOf(entry).every((i) => entry.judgements.has(i));
}

/** The image's categories from its verdicts (the wasm module's rule); none while not reviewed. */
function localCategories(entry) {
  return isReviewed(entry) ? Array.from(wasm.imageCategories(verdictsOf(entry)), String) : [];
}

/** The boxes the user vouches for (confirmed, corrected, drawn) and the rejected ones. */
function userBoxes(entry) {
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
function scheduleSync(entry) {
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
      if (images[current] === entry) renderCaption();
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
      const res = await s.setSample(entry.id, rgba, entry.width, entry.height, entry.base.candidates, verdicts, threshold);
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
function verdictsChanged(entry) {
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
  const before = snapshot(entry);
  fn();
  if (touch) entry.touched = true;
  undoStack.push(entry, before, label, merge);
  verdictsChanged(entry);
}

function setJudgement(entry, index, judgement) {
  edit(entry, judgement ? `${judgement.kind} box` : 'clear verdict', () => {
    if (judgement) entry.judgements.set(index, judgement);
    else entry.judgements.delete(index);
  });
}

function confirmAll() {
  const entry = images[current];
  if (!entry || locked || !entry.base || view !== 'review') return;
  edit(entry, 'confirm all', () => {
    for (const i of shownOf(entry)) {
      if (!entry.judgements.has(i)) entry.judgements.set(i, { kind: 'confirmed' });
    }
  });
  announce('Every shown box is judged.');
}

function updateUndoButtons() {
  ui.undo.disabled = locked || !undoStack.canUndo;
  ui.redo.disabled = locked || !undoStack.canRedo;
  ui.undo.title = undoStack.canUndo ? `Undo ${undoStack.done.at(-1).label} (Ctrl+Z)` : 'Undo (Ctrl+Z)';
  ui.redo.title = undoStack.canRedo ? `Redo ${undoStack.undone.at(-1).label} (Ctrl+Shift+Z or Ctrl+Y)` : 'Redo (Ctrl+Shift+Z or Ctrl+Y)';
}

/** Undoes or redoes the last change, on whichever image it was made (that image is shown). */
function undoRedo(which) {
  if (locked) return;
  const step = which === 'undo' ? undoStack.undo() : undoStack.redo();
  if (!step) return;
  const changed = [];
  for (const change of step.changes) {
    const entry = images.find((e) => e.id === change.id);
    if (!entry) continue;
    restore(entry, which === 'undo' ? change.before : change.after);
    changed.push(entry);
  }
  if (!changed.length) return;
  // The changed image is shown (the current one when a step changed several).
  if (!changed.includes(images[current])) select(images.indexOf(changed[0]));
  if (!selectionValid(images[current])) selection = null;
  for (const entry of changed) verdictsChanged(entry);
  announce(`${which === 'undo' ? 'Undone' : 'Redone'}: ${step.label}.`);
}

function selectionValid(entry) {
  if (!selection || !entry) return false;
  if (selection.kind === 'drawn') return selection.index < entry.drawn.length;
  return shownOf(entry).includes(selection.index);
}

/** Says something to screen readers (the canvas has no text of its own). */
function announce(text) {
  ui.canvasLive.textContent = text;
}

/** Box and class of a selectable box in review mode. */
function boxOf(entry, sel) {
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

function applyBox(entry, sel, bbox, cls, { label = 'box edit', merge = null } = {}) {
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

function addDrawn(entry, bbox, cls) {
  edit(entry, 'drawn box', () => {
    entry.drawn.push({ bbox, class: cls });
    selection = { kind: 'drawn', index: entry.drawn.length - 1 };
  });
}

function removeDrawn(entry, index) {
  edit(entry, 'remove drawn box', () => {
    entry.drawn.splice(index, 1);
    if (selection && selection.kind === 'drawn') {
      if (selection.index === index) selection = null;
      else if (selection.index > index) selection = { kind: 'drawn', index: selection.index - 1 };
    }
  });
}

// ---------------------------------------------------------------- images

function stateOf(entry) {
  if (entry.error) return { key: 'error', text: 'verdicts refused' };
  if (!entry.base) return { key: 'none', text: entry.predicting ? 'predicting…' : 'not reviewed' };
  if (isReviewed(entry)) {
    const cats = entry.inSession ? entry.categories : localCategories(entry);
    const m = cats.includes('missed_detection');
    const f = cats.includes('false_detection');
    if (m && f) return { key: 'missed-false', text: 'reviewed: missed + false', short: '✓ missed + false' };
    if (m) return { key: 'missed', text: 'reviewed: missed', short: '✓ missed' };
    if (f) return { key: 'false', text: 'reviewed: false', short: '✓ false' };
    return { key: 'correct', text: 'reviewed: correct', short: '✓ correct' };
  }
  const idx = shownOf(entry);
  const judged = idx.filter((i) => entry.judgements.has(i)).length;
  if (entry.touched || judged) return { key: 'partial', text: `${judged} of ${idx.length} judged` };
  return { key: 'none', text: 'not reviewed' };
}

function updateThumb(entry) {
  const el = entry.thumb;
  if (!el) return;
  const st = stateOf(entry);
  el.dataset.state = st.key;
  const stateEl = el.querySelector('.thumb-state');
  stateEl.textContent = st.short || st.text;
  stateEl.title = st.text;
  el.setAttribute('aria-label', `${entry.name}: ${st.text}`);
  el.setAttribute('aria-current', images[current] === entry ? 'true' : 'false');
}

function updateAllThumbs() {
  for (const e of images) updateThumb(e);
}

/**
 * Decodes and adds an image. `saved` is its stored record when a project is
 * resumed (its verdicts come back); otherwise the image is new and its bytes
 * and record are saved in the project.
 */
async function addImage(blob, name, source, saved = null) {
  const decoded = await decodeImage(blob, name, MAX_SIDE);
  const entry = {
    id: saved ? saved.id : `img-${nextId++}`,
    name,
    source,
    file: blob,
    bitmap: decoded.bitmap,
    width: decoded.width,
    height: decoded.height,
    originalWidth: decoded.originalWidth,
    originalHeight: decoded.originalHeight,
    base: null,
    latest: null,
    stale: false,
    predicting: false,
    predictError: null,
    judgements: new Map(),
    drawn: [],
    touched: false,
    inSession: false,
    categories: [],
    syncedKey: null,
    error: null,
    syncing: null,
    syncAgain: false,
  };
  if (saved) {
    const v = verdictsOfRecord(saved);
    // The stored prediction is what the verdicts refer to; the latest one is
    // reused when it came from the current weights, else predicted again.
    Object.assign(entry, { base: v.base, judgements: v.judgements, drawn: v.drawn, touched: v.touched });
    if (v.latest && v.latest.model === weightsVersion) entry.latest = v.latest;
    else if (v.latestIsBase && v.base && v.base.model === weightsVersion) entry.latest = v.base;
  }
  const li = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'thumb';
  button.dataset.id = entry.id;
  const canvas = document.createElement('canvas');
  canvas.setAttribute('aria-hidden', 'true');
  drawThumbnail(canvas, entry.bitmap);
  const nameEl = document.createElement('span');
  nameEl.className = 'thumb-name';
  nameEl.textContent = name;
  const stateEl = document.createElement('span');
  stateEl.className = 'thumb-state';
  button.append(canvas, nameEl, stateEl);
  button.addEventListener('click', () => select(images.indexOf(entry)));
  li.append(button);
  ui.thumbs.append(li);
  entry.thumb = button;
  images.push(entry);
  updateThumb(entry);
  renderCaption();
  if (!saved) persist(entry, true);
  return entry;
}

// ---------------------------------------------------------------- saving

/** What the Projects dialog says about this project without loading it. */
function summary() {
  return {
    images: images.length,
    reviewed: images.filter(isReviewed).length,
    runs: runs.length,
    bytes:
      images.reduce((a, e) => a + (e.file ? e.file.size : 0), 0) + ((project && project.record.weights && project.record.weights.bytes) || 0),
  };
}

/** The settings saved with the project. */
function settings() {
  return {
    threshold,
    rule: ui.rule.value,
    epochs: ui.epochs.value,
    untilHonored: ui.untilHonored.checked,
    batchSize: ui.batchSize.value,
    learningRate: ui.learningRate.value,
    updateHistory: ui.updateHistory.checked,
    freezeBackbone: ui.freezeBackbone.checked,
    drawClass: ui.drawClass.value,
    targetClasses: targetClasses && targetClasses.map((c) => classNames[c]),
    weightsFormat: ui.weightsFormat.value,
    labelFormat: ui.labelFormat.value,
  };
}

/** Saves the project record, and `entry`'s record (with its bytes when `withFile`). */
function persist(entry = null, withFile = false) {
  if (!project) return;
  project.record.summary = summary();
  project.record.nextId = nextId;
  project.record.settings = settings();
  project.record.current = images[current] ? images[current].id : null;
  if (entry) project.saveImage(imageRecord(project.id, entry, images.indexOf(entry)), withFile ? entry.file : null);
  else project.saveProject();
}

let saveProblemShown = false;

/** Shows whether everything is saved; a failure is said once, in a sentence, until saving works again. */
async function onSaveState(saveState, error) {
  document.body.dataset.save = saveState;
  ui.saveState.dataset.state = saveState;
  ui.saveState.disabled = saveState !== 'failed';
  if (saveState === 'saving') {
    ui.saveState.textContent = 'Saving…';
    ui.saveState.title = 'Saving the project in this browser';
  } else if (saveState === 'saved') {
    ui.saveState.textContent = 'Saved';
    ui.saveState.title = `Everything is saved in this browser (project “${project ? project.record.name : ''}”)`;
    if (saveProblemShown) {
      saveProblemShown = false;
      setStatus('Saving works again: the project is saved.');
    }
  } else if (saveState === 'failed') {
    ui.saveState.textContent = 'Not saved: retry';
    ui.saveState.title = 'The last changes are only in this tab. Press to try saving again.';
    if (!saveProblemShown) {
      saveProblemShown = true;
      if (isQuotaError(error)) {
        const use = await storageUse();
        showError(
          `The browser's storage for this page is full${use ? ` (${use} used)` : ''}: your latest changes are kept in this tab but not saved. ` +
            'Delete projects you no longer need (Projects, at the top) or download this project as a file (Export); saving is tried again with your next change or when you press “Not saved: retry”.',
        );
      } else {
        showError(
          `The project could not be saved (${messageOf(error).replace(/[.\s]+$/, '')}): your latest changes are kept in this tab but not saved; saving is tried again with your next change`,
        );
      }
    }
  }
}

function showProjectName() {
  const name = project ? project.record.name : 'not saved';
  ui.projectName.textContent = name;
  document.title = project ? `${name} · veritune` : 'veritune: fine-tune a detector with your verdicts';
}

async function openFiles(fileList) {
  if (locked) {
    showError('Images cannot be opened while training runs; wait for it to finish or cancel it.');
    return;
  }
  const files = [...fileList];
  const usable = files
    .filter(looksLikeImage)
    .sort((a, b) => displayName(a).localeCompare(displayName(b), undefined, { numeric: true }));
  const skipped = files.length - usable.length;
  if (!usable.length) {
    showError(
      files.length
        ? `None of the ${files.length} chosen files is an image the page can open (PNG, JPEG, WebP, GIF, BMP, AVIF).`
        : 'No files were chosen.',
    );
    return;
  }
  const run = { cancelled: false };
  const failures = [];
  let first = null;
  let downscaled = 0;
  for (let k = 0; k < usable.length; k++) {
    if (run.cancelled) break;
    const file = usable[k];
    const name = displayName(file);
    setStatus(`Opening image ${k + 1} of ${usable.length}: ${name}`, {
      progress: k / usable.length,
      cancel: () => (run.cancelled = true),
    });
    try {
      const entry = await addImage(file, name, 'user');
      if (!first) first = entry;
      if (entry.width !== entry.originalWidth || entry.height !== entry.originalHeight) downscaled += 1;
    } catch (e) {
      failures.push(messageOf(e));
    }
  }
  for (const f of failures.slice(0, 5)) showError(f);
  if (failures.length > 5) showError(`${failures.length - 5} more files could not be opened.`);
  const parts = [];
  if (run.cancelled) parts.push('Opening was stopped');
  if (skipped) parts.push(`${skipped} file${skipped === 1 ? ' was' : 's were'} skipped (not images)`);
  if (downscaled) {
    parts.push(
      `${downscaled} image${downscaled === 1 ? ' is' : 's are'} larger than ${MAX_SIDE} px and ${downscaled === 1 ? 'was' : 'were'} scaled down to ${MAX_SIDE} px ` +
        'on the longer side for labeling (exported labels are in the original pixels)',
    );
  }
  openNote = parts.length ? `${parts.join('; ')}. ` : '';
  idleStatus();
  if (first) select(images.indexOf(first));
  startPredictLoop();
}

// ---------------------------------------------------------------- predictions

let loop = null;

function needsPrediction(entry) {
  return (!entry.latest || entry.stale) && !entry.predicting && !entry.predictError;
}

async function predictOne(entry) {
  entry.predicting = true;
  updateThumb(entry);
  if (images[current] === entry) renderAll();
  try {
    const result = await withSession(async (s) => {
      const rgba = rgbaOf(entry.bitmap);
      return s.predict(rgba, entry.width, entry.height, threshold);
    });
    let pred = { ...normalisePrediction(result), model: weightsVersion };
    // The same boxes as the prediction the verdicts refer to: keep one object,
    // so the page does not offer to review "new" predictions that are not new.
    if (entry.base && JSON.stringify(entry.base.candidates) === JSON.stringify(pred.candidates)) {
      entry.base.model = pred.model;
      pred = entry.base;
    }
    entry.latest = pred;
    entry.stale = false;
    const untouched = !entry.touched && entry.judgements.size === 0 && entry.drawn.length === 0;
    if (!entry.base || untouched) entry.base = pred;
    persist(entry);
  } catch (e) {
    entry.predictError = sentence(messageOf(e));
    showError(`Could not predict boxes on “${entry.name}”`, e);
  } finally {
    entry.predicting = false;
    updateThumb(entry);
    if (images[current] === entry) renderAll();
  }
}

/** Predicts every image that needs it, the current one first. Resolves when done or stopped. */
function startPredictLoop(label = 'Predicting') {
  if (loop) return loop.promise;
  const l = { cancelled: false };
  l.promise = (async () => {
    document.body.dataset.predicting = 'true';
    let done = 0;
    for (;;) {
      if (l.cancelled) break;
      const cur = images[current];
      const next = cur && needsPrediction(cur) ? cur : images.find(needsPrediction);
      if (!next) break;
      const left = images.filter(needsPrediction).length;
      setStatus(`${label}: image ${done + 1} of ${done + left} (${next.name})`, {
        progress: done / (done + left),
        cancel: () => {
          l.cancelled = true;
          setStatus('Stopping after the current image…');
        },
      });
      await predictOne(next);
      done += 1;
    }
    return { cancelled: l.cancelled };
  })().finally(() => {
    if (loop === l) loop = null;
    delete document.body.dataset.predicting;
    idleStatus();
  });
  loop = l;
  return l.promise;
}

function stopPredictLoop() {
  if (!loop) return Promise.resolve({ cancelled: false });
  loop.cancelled = true;
  return loop.promise;
}

// ---------------------------------------------------------------- canvas

let viewTf = { scale: 1, ox: 0, oy: 0 };

function layoutCanvas() {
  const dpr = window.devicePixelRatio || 1;
  const w = ui.canvasWrap.clientWidth;
  const h = ui.canvasWrap.clientHeight;
  if (ui.canvas.width !== Math.round(w * dpr) || ui.canvas.height !== Math.round(h * dpr)) {
    ui.canvas.width = Math.round(w * dpr);
    ui.canvas.height = Math.round(h * dpr);
  }
  const entry = images[current];
  if (entry) {
    const fit = Math.min(w / entry.width, h / entry.height) || 1;
    const scale = fit * zoom.k;
    clampZoom(entry, w, h, scale);
    viewTf = { scale, ox: w / 2 - zoom.cx * scale, oy: h / 2 - zoom.cy * scale };
  }
  return { w, h, dpr };
}

/** Keeps the view on the image: centred along an axis that fits, else no empty margin. */
function clampZoom(entry, w, h, scale) {
  const axis = (c, size, view) => {
    if (c === null || size * scale <= view) return size / 2;
    const half = view / 2 / scale;
    return Math.max(half, Math.min(size - half, c));
  };
  zoom.cx = axis(zoom.cx, entry.width, w);
  zoom.cy = axis(zoom.cy, entry.height, h);
}

/** Zooms by `factor` keeping the image point under (sx, sy) (CSS pixels in the canvas; default: the centre) in place. */
function zoomBy(factor, sx = null, sy = null) {
  const entry = images[current];
  if (!entry) return;
  const w = ui.canvasWrap.clientWidth;
  const h = ui.canvasWrap.clientHeight;
  if (sx === null) {
    sx = w / 2;
    sy = h / 2;
  }
  layoutCanvas();
  const p = { x: (sx - viewTf.ox) / viewTf.scale, y: (sy - viewTf.oy) / viewTf.scale };
  const k = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, zoom.k * factor));
  const scale = (viewTf.scale / zoom.k) * k;
  zoom = { k, cx: (w / 2 - sx) / scale + p.x, cy: (h / 2 - sy) / scale + p.y };
  renderCanvas();
}

function zoomFit() {
  zoom = { k: 1, cx: null, cy: null };
  renderCanvas();
}

/** Moves the view by (dx, dy) CSS pixels. */
function pan(dx, dy) {
  if (!images[current]) return;
  zoom.cx -= dx / viewTf.scale;
  zoom.cy -= dy / viewTf.scale;
  renderCanvas();
}

const toScreen = (b) => ({
  x: viewTf.ox + b.x0 * viewTf.scale,
  y: viewTf.oy + b.y0 * viewTf.scale,
  w: (b.x1 - b.x0) * viewTf.scale,
  h: (b.y1 - b.y0) * viewTf.scale,
});

function toImage(ev) {
  const r = ui.canvas.getBoundingClientRect();
  return {
    x: (ev.clientX - r.left - viewTf.ox) / viewTf.scale,
    y: (ev.clientY - r.top - viewTf.oy) / viewTf.scale,
  };
}

function drawBox(ctx, bbox, color, { dash = null, width = 2, label = null } = {}) {
  const s = toScreen(bbox);
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  if (dash) ctx.setLineDash(dash);
  ctx.strokeRect(s.x, s.y, s.w, s.h);
  ctx.restore();
  if (label) {
    ctx.save();
    ctx.font = '12px system-ui, sans-serif';
    const tw = ctx.measureText(label).width + 6;
    const th = 16;
    const ly = s.y - th >= 0 ? s.y - th : s.y;
    ctx.fillStyle = color;
    ctx.fillRect(s.x - width / 2, ly, tw, th);
    ctx.fillStyle = '#fff';
    ctx.textBaseline = 'middle';
    ctx.fillText(label, s.x + 3 - width / 2, ly + th / 2);
    ctx.restore();
  }
}

function handlesOf(bbox) {
  const { x0, y0, x1, y1 } = bbox;
  const mx = (x0 + x1) / 2;
  const my = (y0 + y1) / 2;
  return [
    ['nw', x0, y0],
    ['n', mx, y0],
    ['ne', x1, y0],
    ['e', x1, my],
    ['se', x1, y1],
    ['s', mx, y1],
    ['sw', x0, y1],
    ['w', x0, my],
  ];
}

function judgementKind(entry, i) {
  const j = entry.judgements.get(i);
  return j ? j.kind : 'unjudged';
}

function renderCanvas() {
  const { w, h, dpr } = layoutCanvas();
  const ctx = ui.canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#2b2f36';
  ctx.fillRect(0, 0, w, h);
  const entry = images[current];
  let drawn = 0;
  ui.canvas.classList.toggle('draw', mode === 'draw' && view === 'review');
  ui.canvas.classList.toggle('locked', locked);
  ui.canvas.classList.toggle('pan', spaceHeld || (drag && drag.kind === 'pan'));
  ui.zoomValue.textContent = `${Math.round(zoom.k * 100)} %`;
  ui.zoomOut.disabled = !entry || zoom.k <= ZOOM_MIN;
  ui.zoomIn.disabled = !entry || zoom.k >= ZOOM_MAX;
  ui.zoomFit.disabled = !entry || zoom.k === ZOOM_MIN;
  if (!entry) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = session ? 'Open images to begin.' : 'Loading…';
    ui.canvas.dataset.boxes = '0';
    ui.canvas.dataset.predicted = 'false';
    return;
  }
  // Zoomed far in, show the pixels as they are: boxes are placed on them.
  ctx.imageSmoothingEnabled = viewTf.scale < 3;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(entry.bitmap, viewTf.ox, viewTf.oy, entry.width * viewTf.scale, entry.height * viewTf.scale);

  if (view === 'now' && entry.latest) {
    const { labels } = userBoxes(entry);
    for (const l of labels) drawBox(ctx, l.bbox, COLORS.confirmed, { dash: [4, 3], width: 1.5 });
    for (const i of shownOf(entry, entry.latest.candidates)) {
      const d = entry.latest.candidates[i];
      drawBox(ctx, d.bbox, COLORS.now, { label: `${className(d.class)} ${d.score.toFixed(2)}` });
      drawn += 1;
    }
  } else if (entry.base) {
    for (const i of shownOf(entry)) {
      const d = entry.base.candidates[i];
      const j = entry.judgements.get(i);
      const kind = j ? j.kind : 'unjudged';
      const label = `${className(d.class)} ${d.score.toFixed(2)}`;
      if (kind === 'corrected') {
        drawBox(ctx, d.bbox, '#9ca3af', { dash: [3, 3], width: 1 });
        const box = dragBoxFor({ kind: 'shown', index: i }) || j.label.bbox;
        drawBox(ctx, box, COLORS.corrected, { label: `${className(j.label.class)} (corrected)` });
      } else {
        const box = dragBoxFor({ kind: 'shown', index: i }) || d.bbox;
        drawBox(ctx, box, COLORS[kind], {
          dash: kind === 'rejected' ? [6, 4] : null,
          label: kind === 'rejected' ? `${label} ✗` : label,
        });
      }
      drawn += 1;
    }
    entry.drawn.forEach((d, k) => {
      const box = dragBoxFor({ kind: 'drawn', index: k }) || d.bbox;
      drawBox(ctx, box, COLORS.drawn, { label: `${className(d.class)} (drawn)` });
      drawn += 1;
    });
    if (drag && drag.kind === 'draw' && drag.box) drawBox(ctx, drag.box, COLORS.drawn, { dash: [4, 3] });
    const sel = boxOf(entry, selection);
    if (sel) {
      const box = (drag && drag.box && drag.kind !== 'draw' ? drag.box : null) || sel.bbox;
      const s = toScreen(box);
      ctx.save();
      ctx.strokeStyle = '#fff';
      ctx.lineWidth = 1;
      ctx.setLineDash([2, 2]);
      ctx.strokeRect(s.x - 3, s.y - 3, s.w + 6, s.h + 6);
      ctx.setLineDash([]);
      for (const [, hx, hy] of handlesOf(box)) {
        const px = viewTf.ox + hx * viewTf.scale;
        const py = viewTf.oy + hy * viewTf.scale;
        ctx.fillStyle = '#fff';
        ctx.fillRect(px - HANDLE_PX / 2, py - HANDLE_PX / 2, HANDLE_PX, HANDLE_PX);
        ctx.strokeStyle = '#111';
        ctx.strokeRect(px - HANDLE_PX / 2, py - HANDLE_PX / 2, HANDLE_PX, HANDLE_PX);
      }
      ctx.restore();
    }
  }
  ui.canvas.dataset.boxes = String(drawn);
  ui.canvas.dataset.predicted = entry.base ? 'true' : 'false';
  if (entry.predicting && !entry.base) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = 'Predicting…';
  } else if (entry.predictError && !entry.base) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = 'No prediction for this image (see the error above).';
  } else if (!entry.base) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = 'Waiting for prediction…';
  } else {
    ui.overlay.hidden = true;
  }
}

function dragBoxFor(sel) {
  if (!drag || !drag.box || drag.kind === 'draw' || !drag.sel) return null;
  return drag.sel.kind === sel.kind && drag.sel.index === sel.index ? drag.box : null;
}

function hitTest(entry, p) {
  const tol = HANDLE_PX / viewTf.scale;
  const sel = boxOf(entry, selection);
  if (sel) {
    for (const [id, hx, hy] of handlesOf(sel.bbox)) {
      if (Math.abs(p.x - hx) <= tol && Math.abs(p.y - hy) <= tol) return { kind: 'resize', handle: id, sel: selection };
    }
  }
  if (mode === 'draw') return null;
  const hits = [];
  entry.drawn.forEach((d, k) => hits.push({ sel: { kind: 'drawn', index: k }, bbox: d.bbox }));
  for (const i of shownOf(entry)) {
    const b = boxOf(entry, { kind: 'shown', index: i });
    hits.push({ sel: { kind: 'shown', index: i }, bbox: b.bbox });
  }
  const inside = hits.filter(({ bbox }) => p.x >= bbox.x0 && p.x <= bbox.x1 && p.y >= bbox.y0 && p.y <= bbox.y1);
  if (!inside.length) return null;
  inside.sort((a, b) => area(a.bbox) - area(b.bbox));
  return { kind: 'move', sel: inside[0].sel };
}

function onPointerDown(ev) {
  const entry = images[current];
  // Pan: the middle button, or the left one while Space is held; at any time.
  if (entry && (ev.button === 1 || (ev.button === 0 && spaceHeld))) {
    ev.preventDefault();
    ui.canvas.focus();
    drag = { kind: 'pan', last: { x: ev.clientX, y: ev.clientY } };
    ui.canvas.setPointerCapture(ev.pointerId);
    renderCanvas();
    return;
  }
  if (!entry || !entry.base || view !== 'review' || ev.button !== 0) return;
  if (locked) {
    setStatus('Boxes cannot be edited while training runs.');
    return;
  }
  ui.canvas.focus();
  const p = toImage(ev);
  const hit = hitTest(entry, p);
  if (hit) {
    selection = hit.sel;
    const start = boxOf(entry, hit.sel);
    drag = { kind: hit.kind, handle: hit.handle, sel: hit.sel, start: p, origin: { ...start.bbox }, cls: start.class, box: null };
  } else if (mode === 'draw') {
    if (p.x < 0 || p.y < 0 || p.x > entry.width || p.y > entry.height) return;
    drag = { kind: 'draw', start: p, box: null };
  } else {
    selection = null;
    drag = null;
  }
  ui.canvas.setPointerCapture(ev.pointerId);
  renderAll();
}

function onPointerMove(ev) {
  const entry = images[current];
  if (!drag || !entry) return;
  if (drag.kind === 'pan') {
    const dx = ev.clientX - drag.last.x;
    const dy = ev.clientY - drag.last.y;
    drag.last = { x: ev.clientX, y: ev.clientY };
    pan(dx, dy);
    return;
  }
  const p = toImage(ev);
  const dx = p.x - drag.start.x;
  const dy = p.y - drag.start.y;
  if (!drag.box && Math.hypot(dx, dy) * viewTf.scale < 3) return;
  const W = entry.width;
  const H = entry.height;
  if (drag.kind === 'draw') {
    drag.box = normalise({ x0: drag.start.x, y0: drag.start.y, x1: p.x, y1: p.y }, W, H);
  } else if (drag.kind === 'move') {
    const o = drag.origin;
    const mx = Math.max(-o.x0, Math.min(W - o.x1, dx));
    const my = Math.max(-o.y0, Math.min(H - o.y1, dy));
    drag.box = { x0: o.x0 + mx, y0: o.y0 + my, x1: o.x1 + mx, y1: o.y1 + my };
  } else if (drag.kind === 'resize') {
    const b = { ...drag.origin };
    const hd = drag.handle;
    if (hd.includes('w')) b.x0 = p.x;
    if (hd.includes('e')) b.x1 = p.x;
    if (hd.includes('n')) b.y0 = p.y;
    if (hd.includes('s')) b.y1 = p.y;
    drag.box = normalise(b, W, H);
  }
  renderCanvas();
}

function onPointerUp(ev) {
  const entry = images[current];
  const d = drag;
  drag = null;
  if (ui.canvas.hasPointerCapture(ev.pointerId)) ui.canvas.releasePointerCapture(ev.pointerId);
  if (!d || !entry) return;
  if (d.kind === 'pan') {
    renderCanvas();
    return;
  }
  const big = d.box && d.box.x1 - d.box.x0 >= MIN_BOX && d.box.y1 - d.box.y0 >= MIN_BOX;
  if (d.kind === 'draw') {
    if (big) {
      addDrawn(entry, d.box, Number(ui.drawClass.value) || 0);
      return;
    }
    if (d.box) setStatus(`No box drawn: a box needs at least ${MIN_BOX} pixels on each side; drag further.`);
  } else if (d.box && big) {
    applyBox(entry, d.sel, d.box, d.cls, { label: d.kind === 'move' ? 'move box' : 'resize box' });
    return;
  }
  renderAll();
}

function onWheel(ev) {
  if (!images[current]) return;
  ev.preventDefault();
  const lines = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
  const r = ui.canvas.getBoundingClientRect();
  zoomBy(Math.exp(-ev.deltaY * lines * 0.002), ev.clientX - r.left, ev.clientY - r.top);
}

// ---------------------------------------------------------------- box list

function renderBoxList() {
  const entry = images[current];
  const list = ui.boxList;
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement : null;
  const focusKey = focused ? `${focused.closest('li')?.dataset.box}|${focused.dataset.action}` : null;
  list.replaceChildren();
  ui.confirmAll.disabled = locked || !entry || !entry.base || view !== 'review';
  ui.rereview.hidden = !(entry && entry.latest && entry.base && entry.latest !== entry.base && !entry.stale);
  ui.rereview.disabled = locked;
  if (!entry) return;
  const add = (li) => list.append(li);
  if (view === 'now') {
    const idx = entry.latest ? shownOf(entry, entry.latest.candidates) : [];
    idx.forEach((i, k) => {
      const d = entry.latest.candidates[i];
      const li = document.createElement('li');
      li.dataset.box = `now-${k}`;
      li.dataset.judgement = 'now';
      const label = document.createElement('span');
      label.className = 'box-label';
      label.textContent = `#${k + 1} ${className(d.class)} ${d.score.toFixed(2)}`;
      li.append(document.createElement('span'), label);
      add(li);
    });
    if (!idx.length) add(emptyItem('The model shows no box at this threshold now.'));
    return;
  }
  if (!entry.base) {
    add(emptyItem(entry.predictError ? 'No prediction for this image.' : 'Predicting…'));
    return;
  }
  const idx = shownOf(entry);
  idx.forEach((i, k) => {
    const d = entry.base.candidates[i];
    const j = entry.judgements.get(i);
    const kind = j ? j.kind : 'unjudged';
    const li = document.createElement('li');
    li.dataset.box = `shown-${k}`;
    li.dataset.judgement = kind;
    if (selection && selection.kind === 'shown' && selection.index === i) li.classList.add('selected');
    const num = document.createElement('span');
    num.textContent = `#${k + 1}`;
    const label = document.createElement('span');
    label.className = 'box-label';
    label.textContent =
      `${className(d.class)} ${d.score.toFixed(2)}` + (kind === 'corrected' ? ` → ${className(j.label.class)}` : '');
    const stateEl = document.createElement('span');
    stateEl.className = 'box-state';
    stateEl.textContent = kind === 'unjudged' ? 'not judged' : kind;
    const actions = document.createElement('div');
    actions.className = 'box-actions';
    const desc = `box ${k + 1} (${className(d.class)}, ${d.score.toFixed(2)})`;
    actions.append(
      actionButton('Confirm', 'confirm', `Confirm ${desc}`, kind === 'confirmed', () =>
        setJudgement(entry, i, { kind: 'confirmed' }),
      ),
      actionButton('Reject', 'reject', `Reject ${desc}: not an object`, kind === 'rejected', () =>
        setJudgement(entry, i, { kind: 'rejected' }),
      ),
      classSelect(kind === 'corrected' ? j.label.class : d.class, `Class of ${desc}`, (c) => {
        const cur = boxOf(entry, { kind: 'shown', index: i });
        if (c === d.class && kind !== 'corrected') return;
        applyBox(entry, { kind: 'shown', index: i }, { ...cur.bbox }, c);
      }),
    );
    if (kind !== 'unjudged') {
      actions.append(actionButton('Clear', 'clear', `Clear the verdict on ${desc}`, false, () => setJudgement(entry, i, null)));
    }
    li.append(num, label, stateEl, actions);
    li.addEventListener('click', (ev) => {
      if (ev.target.closest('button, select')) return;
      selection = { kind: 'shown', index: i };
      renderAll();
    });
    add(li);
  });
  entry.drawn.forEach((d, k) => {
    const li = document.createElement('li');
    li.dataset.box = `drawn-${k}`;
    li.dataset.judgement = 'drawn';
    if (selection && selection.kind === 'drawn' && selection.index === k) li.classList.add('selected');
    const num = document.createElement('span');
    num.textContent = `+${k + 1}`;
    const label = document.createElement('span');
    label.className = 'box-label';
    label.textContent = className(d.class);
    const stateEl = document.createElement('span');
    stateEl.className = 'box-state';
    stateEl.textContent = 'drawn (missed)';
    const actions = document.createElement('div');
    actions.className = 'box-actions';
    const desc = `drawn box ${k + 1} (${className(d.class)})`;
    actions.append(
      classSelect(d.class, `Class of ${desc}`, (c) => applyBox(entry, { kind: 'drawn', index: k }, { ...d.bbox }, c)),
      actionButton('Remove', 'remove', `Remove ${desc}`, false, () => removeDrawn(entry, k)),
    );
    li.append(num, label, stateEl, actions);
    li.addEventListener('click', (ev) => {
      if (ev.target.closest('button, select')) return;
      selection = { kind: 'drawn', index: k };
      renderAll();
    });
    add(li);
  });
  if (!idx.length && !entry.drawn.length) {
    add(emptyItem('No box at this threshold. If nothing is missed, press Confirm all; otherwise draw the missed objects.'));
  }
  if (focusKey) {
    const [box, action] = focusKey.split('|');
    const el = list.querySelector(`li[data-box="${box}"] [data-action="${action}"]`);
    if (el) el.focus();
  }
}

function emptyItem(text) {
  const li = document.createElement('li');
  li.className = 'empty';
  li.textContent = text;
  return li;
}

function actionButton(text, action, label, pressed, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.dataset.action = action;
  b.setAttribute('aria-label', label);
  if (action === 'confirm' || action === 'reject') b.setAttribute('aria-pressed', pressed ? 'true' : 'false');
  b.disabled = locked;
  b.addEventListener('click', () => {
    if (!locked) onClick();
  });
  return b;
}

/** An `<option>` of a select. */
function option(value, text) {
  const o = document.createElement('option');
  o.value = String(value);
  o.textContent = text;
  return o;
}

function classSelect(value, label, onChange) {
  const s = document.createElement('select');
  s.dataset.action = 'class';
  s.setAttribute('aria-label', label);
  s.append(...classNames.map((n, c) => option(c, n)));
  s.value = String(value);
  s.disabled = locked;
  s.addEventListener('change', () => {
    if (!locked) onChange(Number(s.value));
  });
  return s;
}

// ---------------------------------------------------------------- selection and rendering

function renderCaption() {
  const entry = images[current];
  ui.imageName.textContent = entry ? `${current + 1} / ${images.length}: ${entry.name}` : '';
  ui.imageState.textContent = entry ? stateOf(entry).text : '';
  ui.prev.disabled = current <= 0;
  ui.next.disabled = current < 0 || current >= images.length - 1;
  ui.viewChoice.hidden = !runs.length;
}

function renderAll() {
  renderCanvas();
  renderBoxList();
  renderCaption();
}

function select(index) {
  if (index < 0 || index >= images.length) return;
  const prev = images[current];
  current = index;
  selection = null;
  drag = null;
  if (prev !== images[current]) zoom = { k: 1, cx: null, cy: null };
  if (prev) updateThumb(prev);
  const entry = images[current];
  updateThumb(entry);
  entry.thumb.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  renderAll();
  if (project && project.record.current !== entry.id) persist();
  return needsPrediction(entry) && !loop ? predictOne(entry) : null;
}

// ---------------------------------------------------------------- training

const charts = {
  loss: new LineChart(
    $('plot-loss'),
    [
      { label: 'transfer loss', color: '#2563eb' },
      { label: 'history loss', color: '#dc2626', dash: [4, 2] },
    ],
    { title: 'Loss', yMin: 0 },
  ),
  similarity: new LineChart($('plot-similarity'), [{ label: 's', color: '#7c3aed' }], {
    title: 'Similarity s',
    yMin: -1,
    yMax: 1,
  }),
  weights: new LineChart(
    $('plot-weights'),
    [
      { label: 'a_t', color: '#2563eb' },
      { label: 'a_h', color: '#dc2626', dash: [4, 2] },
    ],
    { title: 'Weights', yMin: 0, yMax: 1 },
  ),
};

function setLocked(value) {
  locked = value || Boolean(crashMessage);
  value = locked;
  ui.threshold.disabled = value;
  ui.fileInput.disabled = value;
  ui.folderInput.disabled = value;
  ui.train.disabled = value || !session;
  ui.exportButton.disabled = value || !session;
  ui.statusCancel.disabled = Boolean(crashMessage);
  ui.epochs.disabled = value;
  ui.untilHonored.disabled = value;
  ui.rule.disabled = value;
  ui.batchSize.disabled = value;
  ui.learningRate.disabled = value;
  ui.updateHistory.disabled = value;
  ui.freezeBackbone.disabled = value;
  ui.modelChoice.disabled = value;
  ui.exportProject.disabled = value || !session;
  ui.weightsInput.disabled = value || !session;
  ui.exportLabels.disabled = value || !session;
  ui.labelsInput.disabled = value;
  ui.labelsFolderInput.disabled = value;
  updateUndoButtons();
  renderAll();
}

function formatSeconds(s) {
  if (!Number.isFinite(s)) return '…';
  if (s < 60) return `${Math.max(0, Math.round(s))} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

/** Whether the model can train with a frozen backbone (NanoDet; the digits detector always trains whole). */
function hasBackboneChoice() {
  return Boolean(model && model.freezableBackbone);
}

/**
 * The training form as the wasm module takes it; the module fills in the
 * detector's defaults and checks the ranges (its sentence reaches the user).
 */
function readTrainOptions() {
  const whole = (el, what) => {
    const value = Number(el.value);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${what} must be a whole number, such as ${el.defaultValue}.`);
    return value;
  };
  const epochs = whole(ui.epochs, 'Epochs');
  const batchSize = whole(ui.batchSize, 'The batch size');
  const learningRate = Number(ui.learningRate.value);
  if (ui.learningRate.value.trim() === '' || !Number.isFinite(learningRate)) throw new Error('The learning rate must be a number, such as 0.001.');
  return {
    epochs,
    untilHonored: ui.untilHonored.checked,
    threshold,
    rule: ui.rule.value,
    batchSize,
    learningRate,
    freezeBackbone: hasBackboneChoice() && ui.freezeBackbone.checked,
  };
}

function figures(entries, which) {
  const perImage = [];
  for (const e of entries) {
    const pred = which(e);
    if (!pred) continue;
    const shown = shownOf(e, pred.candidates).map((i) => pred.candidates[i]);
    const { labels, rejected } = userBoxes(e);
    perImage.push({
      id: e.id,
      name: e.name,
      reviewed: e.inSession,
      shown: shown.length,
      userBoxes: labels.length,
      matching: countMatches(shown, labels),
      rejected: rejected.length,
      rejectedShown: countMatches(shown, rejected),
    });
  }
  const sum = (k) => perImage.reduce((a, r) => a + r[k], 0);
  return {
    threshold,
    images: perImage.length,
    shown: sum('shown'),
    userBoxes: sum('userBoxes'),
    matching: sum('matching'),
    rejected: sum('rejected'),
    rejectedShown: sum('rejectedShown'),
    perImage,
  };
}

async function train() {
  if (training || !session || crashMessage) return;
  let options;
  try {
    options = readTrainOptions();
    await withSession((s) => s.trainSettings(options));
  } catch (e) {
    showError('Cannot train', e);
    return;
  }
  training = true;
  setPhase('training');
  setLocked(true);
  ui.cancelTrain.disabled = true;
  ui.trainStatus.textContent = 'Preparing…';
  try {
    await stopPredictLoop();
    await historyReady;
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    const stats = await withSession((s) => s.stats());
    if (!stats.samples) {
      showError(
        'Nothing to train on yet: judge every box on at least one image (Confirm all is the quick way) or draw a missed box',
      );
      ui.trainStatus.textContent = 'Not trained: no reviewed image.';
      return;
    }
    // The engine this run trains on: a lost GPU replaces the session during the run.
    const engine = session;
    const run = {
      index: runs.length + 1,
      ...options,
      backend: facts.backend,
      threshold,
      startedAt: new Date().toISOString(),
      samples: stats,
      records: [],
      cancelled: false,
      seconds: 0,
      before: figures(images, (e) => e.latest),
      after: null,
      epochChecks: [],
      historyKept: null,
    };
    for (const c of Object.values(charts)) c.clear();
    ui.trainProgress.value = 0;
    ui.trainProgress.max = 1;
    const t0 = performance.now();
    ui.cancelTrain.disabled = false;
    setStatus(`Training with the ${options.rule} rule…`);
    ui.trainStatus.textContent = options.untilHonored
      ? `Starting: at most ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} on ${stats.samples} image${stats.samples === 1 ? '' : 's'}, until every verdict is honored…`
      : `Starting ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} on ${stats.samples} image${stats.samples === 1 ? '' : 's'}…`;
    let skipped = 0;
    let stepStart = t0;
    const onStep = (record, done, total, weights, check) => {
      const now = performance.now();
      // Milliseconds of this step as the page saw it (the first includes compiling kernels).
      if (record) record.ms = Math.round(now - stepStart);
      stepStart = now;
      run.records.push(record);
      if (record && record.skipped) skipped += 1;
      const elapsed = (performance.now() - t0) / 1000;
      const left = done > 0 ? (elapsed / done) * (total - done) : NaN;
      const perEpoch = total / options.epochs;
      const epoch = Math.min(options.epochs, Math.max(1, Math.ceil(done / perEpoch)));
      ui.trainProgress.max = total;
      ui.trainProgress.value = done;
      ui.trainProgress.setAttribute('aria-valuetext', `step ${done} of ${total}`);
      if (check) run.epochChecks.push(check);
      const last = run.epochChecks[run.epochChecks.length - 1];
      ui.trainStatus.textContent =
        (options.untilHonored
          ? `Step ${done} of at most ${total} · epoch ${epoch} of at most ${options.epochs} · ` +
            (last ? `${honoredText(last.verdicts_honored)} after epoch ${last.epochs} · ` : '') +
            `at most about ${formatSeconds(left)} left`
          : `Step ${done} of ${total} · epoch ${epoch} of ${options.epochs} · about ${formatSeconds(left)} left`) +
        (skipped ? ` · ${skipped} skipped` : '');
      if (weights) checkpoint(run, weights, total);
      const mix = (record && record.mix) || {};
      charts.loss.push(record.transfer_loss, record.history_loss);
      charts.similarity.push(mix.similarity);
      charts.weights.push(mix.a_t, mix.a_h);
    };
    let result;
    try {
      // With a project, every completed step is saved (a closed tab resumes from it).
      result = await withSession((s) => s.train({ ...options, checkpoint: Boolean(project) }, onStep));
    } catch (e) {
      if (!(run.backend === 'webgpu' && (await engine.deviceLostWithin(1000)))) showError('Training failed', e);
      ui.trainStatus.textContent = `Training failed after ${run.records.length} step${run.records.length === 1 ? '' : 's'}.`;
      result = null;
    }
    ui.cancelTrain.disabled = true;
    run.seconds = (performance.now() - t0) / 1000;
    if (result) {
      run.cancelled = Boolean(result.cancelled);
      if (Array.isArray(result.records) && result.records.length > run.records.length) run.records = result.records;
      if (Array.isArray(result.epochChecks)) run.epochChecks = result.epochChecks;
      const last = run.epochChecks[run.epochChecks.length - 1];
      const reached = !run.cancelled && last && last.verdicts_honored.passed === last.verdicts_honored.total;
      ui.trainStatus.textContent =
        `${run.cancelled ? 'Cancelled' : 'Finished'}: ${run.records.length} step${run.records.length === 1 ? '' : 's'} in ${formatSeconds(run.seconds)}` +
        (reached ? `, every verdict honored after epoch ${last.epochs}.` : '.');
      const skippedInRun = run.records.filter((r) => r && r.skipped).length;
      if (skippedInRun) ui.trainStatus.textContent += ` ${skippedSteps(skippedInRun)}`;
    }
    if (!run.records.length || crashMessage) return;
    if (run.backend === 'webgpu' && (gpuLost || (!result && (await engine.deviceLostWithin(1000))))) {
      if (run.checkpointed) runs.push(run);
      ui.trainStatus.textContent = run.checkpointed
        ? `Stopped: the GPU was lost. The weights after step ${run.checkpointed} (the last completed step) are kept.`
        : 'Stopped: the GPU was lost. Nothing of this run was kept; the weights are those of the last finished run.';
      return;
    }
    runs.push(run);
    if (!run.checkpointed) weightsVersion += 1;
    run.interrupted = false;
    await saveTraining(run);
    if (result && !run.cancelled && ui.updateHistory.checked) await updateHistory(run);
    // The weights changed: predict every image again and show what changed.
    for (const e of images) if (e.latest) e.stale = true;
    training = false;
    setPhase('repredicting');
    setLocked(false);
    const pass = await startPredictLoop('Predicting again with the adapted model');
    run.after = figures(images.filter((e) => !e.stale), (e) => e.latest);
    run.historyKept = await historyKept();
    if (project) project.saveRun(run);
    showChanges(run, pass.cancelled);
    ui.trainStatus.textContent += pass.cancelled ? ' Predicting again was stopped.' : ' Images predicted again.';
  } catch (e) {
    showError('Training could not run', e);
  } finally {
    training = false;
    trainAttempts += 1;
    document.body.dataset.trainAttempts = String(trainAttempts);
    setPhase('ready');
    setLocked(false);
    ui.cancelTrain.disabled = true;
    idleStatus();
  }
}

/**
 * After each completed step of a run (`bytes`: the weights then): they become
 * the weights a lost GPU goes on from, and the project saves them with the
 * run's records so far, marked interrupted until the run ends, so a closed
 * tab resumes from the last completed step. A `veritune:checkpoint` event
 * on the document (detail: `{step}`) says when a step is saved.
 */
function checkpoint(run, bytes, total) {
  currentWeights = bytes;
  if (!project) return;
  if (!run.checkpointed) weightsVersion += 1;
  run.checkpointed = run.records.length;
  run.interrupted = true;
  run.totalSteps = total;
  project.record.weightsVersion = weightsVersion;
  project.saveWeights(bytes);
  project.saveRun({ ...run, records: [...run.records] });
  persist();
}

/** Keeps the weights after a run (the session's current weights) and saves them and the run's records in the project. */
async function saveTraining(run) {
  try {
    const bytes = await withSession((s) => s.exportWeights());
    currentWeights = bytes;
    if (!project) return;
    project.saveWeights(bytes);
    project.record.weights = { bytes: bytes.length, savedAt: new Date().toISOString() };
    project.record.weightsVersion = weightsVersion;
    project.saveRun(run);
    persist();
  } catch (e) {
    showError('The trained weights could not be read to save them in the project', e);
  }
}

function cancelTraining() {
  if (!training || !session) return;
  try {
    session.cancel();
    ui.cancelTrain.disabled = true;
    ui.trainStatus.textContent = 'Cancelling after the current step…';
  } catch (e) {
    showError('Could not cancel training', e);
  }
}

function showChanges(run, partial) {
  const before = new Map(run.before.perImage.map((r) => [r.id, r]));
  const rows = run.after.perImage.filter((r) => before.has(r.id));
  const b = { shown: 0, matching: 0, rejectedShown: 0 };
  const a = { shown: 0, matching: 0, rejectedShown: 0, userBoxes: 0, rejected: 0 };
  ui.changesBody.replaceChildren();
  for (const r of rows) {
    const p = before.get(r.id);
    for (const k of Object.keys(b)) b[k] += p[k];
    for (const k of Object.keys(a)) a[k] += r[k];
    ui.changesBody.append(changeRow(r.name, p, r));
  }
  let foot = ui.changesTable.querySelector('tfoot');
  if (!foot) {
    foot = document.createElement('tfoot');
    ui.changesTable.append(foot);
  }
  foot.replaceChildren(changeRow('All images', b, a));
  ui.changesSummary.textContent =
    `Run ${run.index} (${run.rule}, ${run.records.length} steps${run.cancelled ? ', cancelled' : ''}): ` +
    `boxes shown ${b.shown} → ${a.shown}; boxes matching your verdicts ${b.matching} → ${a.matching} of ${a.userBoxes}; ` +
    `rejected boxes still shown ${b.rejectedShown} → ${a.rejectedShown} of ${a.rejected}.` +
    (partial ? ' Some images were not predicted again.' : '');
  showFidelity(run);
  ui.changesPanel.hidden = false;
  ui.changesPanel.scrollIntoView({ block: 'nearest' });
  renderAll();
}

const ASKED = {
  confirmed: 'confirmed box not shown',
  corrected: 'corrected box not shown',
  rejected: 'rejected box still shown',
  drawn: 'drawn box not shown',
};

/** "5 of 7 verdicts honored", or "All 7 verdicts honored". */
function honoredText({ passed, total }) {
  return passed === total ? `All ${total} verdict${total === 1 ? '' : 's'} honored` : `${passed} of ${total} verdicts honored`;
}

/**
 * History agreement after a run (`{passed, total}`: the history library's
 * boxes the model still shows, as the session measures it), or null without
 * a history library or when it cannot be measured.
 */
async function historyKept() {
  if (!session || crashMessage) return null;
  try {
    const stats = await withSession((s) => s.stats());
    if (!stats.history) return null;
    setStatus('Checking the history library with the adapted model…');
    return await withSession((s) => s.historyAgreement(threshold));
  } catch (e) {
    showError('The history library could not be checked', e);
    return null;
  }
}

/**
 * "7 of 8 verdicts honored, history kept 96 %" over the images trained on,
 * as the crate's fidelity rule decides on their predictions after `run`, and
 * a button per verdict not honored yet that opens its image with the box
 * selected.
 */
function showFidelity(run) {
  const missed = [];
  let honored = 0;
  let total = 0;
  for (const entry of images) {
    if (!entry.inSession || !entry.latest || entry.stale) continue;
    const shown = shownOf(entry);
    for (const check of wasm.checkVerdicts(verdictsOf(entry), entry.latest.candidates, threshold)) {
      total += 1;
      if (check.honored) {
        honored += 1;
      } else {
        const box = check.asked === 'drawn' ? { kind: 'drawn', index: check.index } : { kind: 'shown', index: shown[check.index] };
        missed.push({ entry, check, box });
      }
    }
  }
  const kept = run.historyKept;
  ui.fidelitySummary.textContent =
    honoredText({ passed: honored, total }) +
    (kept && kept.total ? `, history kept ${Math.round((100 * kept.passed) / kept.total)} %` : '') +
    (missed.length
      ? '. Not honored yet (train again to go on from here, raise Epochs, or raise the learning rate under Advanced):'
      : '.');
  ui.notHonored.replaceChildren(
    ...missed.map(({ entry, check, box }) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `${entry.name}: ${ASKED[check.asked]} (${className(check.label.class)})`;
      button.addEventListener('click', async () => {
        await select(images.indexOf(entry));
        view = 'review';
        document.querySelector('input[name="view"][value="review"]').checked = true;
        selection = box;
        renderAll();
      });
      li.append(button);
      return li;
    }),
  );
}

function changeRow(name, p, r) {
  const tr = document.createElement('tr');
  const cells = [
    [name, null],
    [`${p.shown} → ${r.shown}`, null],
    [`${p.matching} → ${r.matching} / ${r.userBoxes}`, Math.sign(r.matching - p.matching)],
    [`${p.rejectedShown} → ${r.rejectedShown} / ${r.rejected}`, -Math.sign(r.rejectedShown - p.rejectedShown)],
  ];
  cells.forEach(([text, better], k) => {
    const td = document.createElement(k === 0 ? 'th' : 'td');
    if (k === 0) {
      td.scope = 'row';
      td.title = name;
    }
    td.textContent = text;
    if (better > 0) td.className = 'better';
    if (better < 0) td.className = 'worse';
    tr.append(td);
  });
  return tr;
}

function rereview() {
  const entry = images[current];
  if (!entry || locked || !entry.latest) return;
  selection = null;
  view = 'review';
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

// ---------------------------------------------------------------- export

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function exportAll() {
  if (!session || training || crashMessage) return;
  ui.exportButton.disabled = true;
  const format = ui.weightsFormat.value;
  const file = WEIGHTS_FILES[format];
  setStatus(`Exporting the adapted weights as ${format}…`);
  try {
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    const bytes = await withSession((s) => s.exportWeights(format));
    if (!bytes || !bytes.length) throw new Error('The session returned no weights');
    download(new Blob([bytes], { type: 'application/octet-stream' }), file);
    const stats = await withSession((s) => s.stats());
    const manifest = {
      format: 'veritune-manifest',
      version: 1,
      created: new Date().toISOString(),
      weights: { file, format, bytes: bytes.length },
      model: model.id,
      baseModelHash: facts.baseModelHash,
      historyLibrary: historyAbout || null,
      targetClasses: targetClasses && targetClasses.map((c) => classNames[c]),
      backend: facts.backend,
      backendNotice: facts.notice,
      classNames,
      inputSize: facts.inputSize,
      threshold,
      verdicts: {
        samples: stats.samples,
        correct: stats.correct,
        missed: stats.missed,
        falseDetections: stats.falseDetections,
        history: stats.history,
        images: images
          .filter((e) => e.inSession)
          .map((e) => {
            const v = verdictsOf(e);
            const count = (k) => v.shown.filter((s) => s.judgement && s.judgement.kind === k).length;
            return {
              name: e.name,
              source: e.source,
              width: e.width,
              height: e.height,
              categories: e.categories,
              shown: v.shown.length,
              confirmed: count('confirmed'),
              rejected: count('rejected'),
              corrected: count('corrected'),
              drawn: v.drawn.length,
            };
          }),
      },
      training: runs.map((r) => ({
        run: r.index,
        rule: r.rule,
        epochs: r.epochs,
        untilHonored: Boolean(r.untilHonored),
        epochChecks: r.epochChecks || [],
        historyKept: r.historyKept || null,
        batchSize: r.batchSize,
        learningRate: r.learningRate,
        freezeBackbone: Boolean(r.freezeBackbone),
        backend: r.backend,
        startedAt: r.startedAt,
        seconds: Math.round(r.seconds * 10) / 10,
        cancelled: r.cancelled,
        steps: r.records.length,
        records: r.records,
        before: r.before,
        after: r.after,
        history: r.history || null,
      })),
    };
    download(new Blob([JSON.stringify(manifest, null, 2)], { type: 'application/json' }), 'veritune-manifest.json');
    setStatus(`Downloaded ${file} (${bytes.length.toLocaleString()} bytes) and veritune-manifest.json.`);
  } catch (e) {
    showError('Export failed', e);
    idleStatus();
  } finally {
    ui.exportButton.disabled = training || !session || Boolean(crashMessage);
  }
}

/** Downloads the labels the reviewed images' verdicts give, in the chosen format, in the original images' pixels. */
async function exportLabels() {
  if (!session || locked || crashMessage) return;
  const format = ui.labelFormat.value;
  const file = LABEL_FILES[format];
  ui.exportLabels.disabled = true;
  try {
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    const reviewed = images.filter(isReviewed);
    if (!reviewed.length) {
      showError('There are no labels to download yet: judge every box on at least one image (Confirm all is the quick way) or draw the missed objects');
      return;
    }
    const items = reviewed.map((e) => ({
      name: e.name,
      width: e.width,
      height: e.height,
      originalWidth: e.originalWidth,
      originalHeight: e.originalHeight,
      verdicts: verdictsOf(e),
    }));
    const bytes = await withSession((s) => s.exportLabels(format, items));
    download(new Blob([bytes], { type: format === 'coco' ? 'application/json' : 'application/zip' }), file);
    const boxes = reviewed.reduce((n, e) => n + userBoxes(e).labels.length, 0);
    setStatus(`Downloaded ${file}: ${boxes} box${boxes === 1 ? '' : 'es'} on ${reviewed.length} reviewed image${reviewed.length === 1 ? '' : 's'}.`);
  } catch (e) {
    showError('The labels could not be written', e);
  } finally {
    ui.exportLabels.disabled = locked || !session || Boolean(crashMessage);
  }
}

/** "a, b, c and 4 more" of quoted names. */
function someNames(names, shown = 5) {
  const quoted = names.slice(0, shown).map((n) => `“${n}”`);
  return names.length > shown ? `${quoted.join(', ')} and ${names.length - shown} more` : quoted.join(', ');
}

/**
 * Imports label files (COCO, YOLO with classes.txt, or Pascal VOC) for the
 * open images: each matched image gets the verdicts a careful user would
 * give knowing those objects, all of them as one undo step.
 */
async function importLabels(fileList, fromFolder) {
  if (!session || locked || crashMessage) {
    showError('Labels cannot be imported while training runs; wait for it to finish or cancel it.');
    return;
  }
  const all = [...fileList];
  // A folder holds images and other files too: only label files are read.
  const files = fromFolder ? all.filter((f) => LABEL_FILE.test(f.name)) : all;
  if (!files.length) {
    showError(all.length ? 'The chosen folder has no label files (.json, .txt or .xml).' : 'No files were chosen.');
    return;
  }
  ui.importReport.textContent = '';
  try {
    // The verdicts refer to each image's prediction: every open image needs one.
    setStatus('Predicting the open images before importing labels…');
    await startPredictLoop('Predicting before the import');
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    setStatus(`Reading ${files.length} label file${files.length === 1 ? '' : 's'}…`);
    const texts = await Promise.all(files.map(async (f) => ({ name: displayName(f), text: await f.text() })));
    const targets = images.filter((e) => e.base);
    const shown = targets.map((e) => shownOf(e));
    const open = targets.map((e, k) => ({
      name: e.name,
      width: e.width,
      height: e.height,
      shown: shown[k].map((i) => e.base.candidates[i]),
    }));
    const result = await withSession((s) => s.importLabels(texts, open));
    const changes = [];
    const count = { confirmed: 0, corrected: 0, rejected: 0, drawn: 0, objects: 0 };
    for (const r of result.images) {
      const entry = targets[r.index];
      const before = snapshot(entry);
      entry.judgements = new Map(shown[r.index].map((i, k) => [i, r.judgements[k]]));
      entry.drawn = r.drawn.map((d) => ({ bbox: { ...d.bbox }, class: d.class }));
      entry.touched = true;
      changes.push({ entry, before });
      for (const j of r.judgements) count[j.kind] += 1;
      count.drawn += r.drawn.length;
      count.objects += r.objects;
    }
    undoStack.pushGroup(changes, 'import labels');
    if (changes.length && !changes.some((c) => c.entry === images[current])) select(images.indexOf(changes[0].entry));
    for (const { entry } of changes) verdictsChanged(entry);
    const lines = [];
    const n = changes.length;
    lines.push(
      n
        ? `Imported ${result.format.toUpperCase()} labels for ${n} image${n === 1 ? '' : 's'} (${count.objects} object${count.objects === 1 ? '' : 's'}): ` +
            `${count.confirmed} shown box${count.confirmed === 1 ? '' : 'es'} confirmed, ${count.corrected} corrected (the right object under another class), ${count.rejected} rejected, ${count.drawn} drawn. Undo reverts the import.`
        : `No image was labelled: none of the ${result.format.toUpperCase()} labels names an open image.`,
    );
    if (result.notOpen.length) {
      lines.push(`${result.notOpen.length} label entr${result.notOpen.length === 1 ? 'y names an image' : 'ies name images'} that ${result.notOpen.length === 1 ? 'is' : 'are'} not open: ${someNames(result.notOpen)}; open ${result.notOpen.length === 1 ? 'it' : 'them'} and import again to use ${result.notOpen.length === 1 ? 'it' : 'them'}.`);
    }
    if (result.repeated.length) {
      lines.push(`${result.repeated.length} label entr${result.repeated.length === 1 ? 'y was' : 'ies were'} skipped because an earlier one labels the same image: ${someNames(result.repeated)}.`);
    }
    for (const c of result.unknownClasses) {
      lines.push(`The model has no class “${c.name}”: ${c.boxes} box${c.boxes === 1 ? ' was' : 'es were'} skipped.`);
    }
    const unpredicted = images.length - targets.length;
    if (unpredicted) lines.push(`${unpredicted} open image${unpredicted === 1 ? ' has' : 's have'} no prediction and got no labels.`);
    ui.importReport.textContent = lines.join(' ');
    if (!n) showError(lines[0]);
    setStatus(lines[0]);
  } catch (e) {
    showError('The labels could not be imported', e);
    idleStatus();
  }
}

/** Downloads the whole project (images, verdicts, weights, runs) as one file. */
async function exportProject() {
  if (!session || training || crashMessage) return;
  ui.exportProject.disabled = true;
  setStatus('Writing the project file…');
  try {
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    // The weights only when they differ from the default model's.
    const weights = runs.length ? await withSession((s) => s.exportWeights()) : null;
    const record = {
      ...(project ? project.record : { name: 'veritune project', createdAt: new Date().toISOString() }),
      baseModelHash: facts.baseModelHash,
      classNames,
      settings: settings(),
      current: images[current] ? images[current].id : null,
      nextId,
    };
    const file = Store.encode({
      project: record,
      images: images.map((e, k) => [imageRecord('', e, k), e.file]),
      weights,
      runs,
    });
    const base = record.name.replace(/[^\p{L}\p{N}._ -]+/gu, '_').trim() || 'project';
    download(file, `${base}${FILE_EXTENSION}`);
    setStatus(`Downloaded ${base}${FILE_EXTENSION} (${formatBytes(file.size)}, ${images.length} images${weights ? ', trained weights' : ''}).`);
  } catch (e) {
    showError('The project file could not be written', e);
    idleStatus();
  } finally {
    ui.exportProject.disabled = training || !session || Boolean(crashMessage);
  }
}

// ---------------------------------------------------------------- projects

/**
 * Which project this tab works on: the one asked for by a reload
 * (sessionStorage) or ?project=, else the user's choice in the Projects
 * dialog when there are saved projects, else a new one. Returns
 * {record, isNew}, or null when this browser cannot save projects.
 */
async function chooseProject() {
  try {
    store = await openStore();
  } catch (e) {
    showError(messageOf(e));
    return null;
  }
  let wanted = sessionStorage.getItem(OPEN_KEY) || params.get('project');
  sessionStorage.removeItem(OPEN_KEY);
  if (params.has('project')) {
    const url = new URL(location.href);
    url.searchParams.delete('project');
    history.replaceState(null, '', url);
  }
  for (;;) {
    const list = await store.list();
    if (!wanted) {
      const open = await Store.openIds();
      if (!list.some((p) => !open.has(p.id))) {
        // Nothing to resume here (no project, or every one is open in another tab).
        wanted = 'new';
      } else {
        setPhase('choosing');
        setStatus('Choose a project to continue.');
        const choice = await showProjects({ store, atStart: true });
        wanted = choice.action === 'new' ? 'new' : choice.id;
        setPhase('starting');
      }
    }
    if (wanted === 'last') {
      const open = await Store.openIds();
      const last = list.find((p) => !open.has(p.id));
      wanted = last ? last.id : 'new';
    }
    let record;
    const isNew = wanted === 'new';
    if (isNew) {
      record = await store.create();
    } else {
      record = await store.get(wanted);
      if (!record) {
        showError('The project to open no longer exists in this browser; choose another');
        wanted = null;
        continue;
      }
    }
    if (!(await Store.lock(record.id))) {
      showError(`“${record.name}” is open in another tab of this browser; use that tab or choose another project here`);
      wanted = null;
      continue;
    }
    record.openedAt = new Date().toISOString();
    return { record, isNew };
  }
}

/** The Projects button: open another project, a new or imported one (the page reloads into it). */
async function openProjectsDialog() {
  if (!store) {
    showError('Projects cannot be saved in this browser, so there is no list of projects');
    return;
  }
  const choice = await showProjects({ store, currentId: project ? project.id : null, busy: locked });
  if (choice.action === 'close') {
    ui.projectsButton.focus();
    return;
  }
  if (project) await project.flush();
  sessionStorage.setItem(OPEN_KEY, choice.action === 'new' ? 'new' : choice.id);
  location.reload();
}

/** Puts a resumed project's images, verdicts, settings and training runs back on the page. */
async function restoreProject(weightsLoaded) {
  const [records, runRecords] = await Promise.all([store.images(project.id), store.runs(project.id)]);
  for (const r of runRecords) {
    const { projectId, ...run } = r;
    runs.push(run);
  }
  // Saved weights that could not be loaded are a change of weights: no saved
  // prediction is current.
  weightsVersion = (project.record.weightsVersion ?? runs.length) + (weightsLoaded ? 0 : 1);
  const missing = [];
  for (let k = 0; k < records.length; k++) {
    const r = records[k];
    setStatus(`Opening image ${k + 1} of ${records.length} of “${project.record.name}”: ${r.name}`, { progress: k / records.length });
    try {
      const file = await store.readImage(project.id, r.id);
      if (!file) {
        missing.push(r.name);
        continue;
      }
      await addImage(file, r.name, r.source, r);
      const n = Number(String(r.id).replace(/^img-/, ''));
      if (Number.isInteger(n) && n >= nextId) nextId = n + 1;
    } catch (e) {
      showError(`“${r.name}” of this project could not be opened`, e);
    }
  }
  if (missing.length) {
    showError(`${missing.length} image${missing.length === 1 ? ' is' : 's are'} missing from the saved project (first: “${missing[0]}”); the rest is here`);
  }
  const last = runs.at(-1);
  if (last) {
    for (const c of Object.values(charts)) c.clear();
    for (const rec of last.records || []) {
      const mix = (rec && rec.mix) || {};
      charts.loss.push(rec.transfer_loss, rec.history_loss);
      charts.similarity.push(mix.similarity);
      charts.weights.push(mix.a_t, mix.a_h);
    }
    const steps = (last.records || []).length;
    ui.trainStatus.textContent = last.interrupted
      ? `Run ${last.index} stopped after step ${steps} of ${last.totalSteps ?? '?'} (the page was closed or lost its GPU); the weights after that step are kept.`
      : `Run ${last.index} (saved): ${last.cancelled ? 'cancelled after ' : ''}${steps} steps with the ${last.rule} rule.`;
    if (last.after) showChanges(last, false);
  }
  const at = images.findIndex((e) => e.id === project.record.current);
  // The saved prediction shows at once; the current model predicts again in the background.
  select(at >= 0 ? at : 0);
  // The reviewed images go back into the session (the counters follow).
  for (const e of images) if (isReviewed(e)) scheduleSync(e);
}

const classPicker = new TargetClassPicker(
  { list: $('class-list'), filter: $('class-filter'), all: $('classes-all'), none: $('classes-none'), summary: $('target-summary') },
  (chosen) => {
    setTargetClasses(chosen);
    for (const e of images) if (e.base && (e.inSession || isReviewed(e))) scheduleSync(e);
    persist();
    refreshStats();
  },
);

/** Shows (and trains) only the classes `chosen` (indices; null: every class). */
function setTargetClasses(chosen) {
  targetClasses = chosen === null ? null : [...new Set(chosen)].sort((a, b) => a - b);
  classPicker.set(targetClasses, false);
  const keep = ui.drawClass.value;
  ui.drawClass.replaceChildren(...classNames.map((n, c) => option(c, n)).filter((o) => isTarget(Number(o.value))));
  if ([...ui.drawClass.options].some((o) => o.value === keep)) ui.drawClass.value = keep;
  const entry = images[current];
  if (selection && selection.kind === 'shown' && entry && !shownOf(entry).includes(selection.index)) selection = null;
  updateAllThumbs();
  renderAll();
}

/** Another model: a new project with it (the current one stays in Projects); the page reloads. */
async function switchModel(id) {
  if (project) await project.flush();
  if (store) sessionStorage.setItem(OPEN_KEY, 'new');
  const url = new URL(location.href);
  url.searchParams.set('model', id);
  location.assign(url);
}

/** Reads models.json and picks the model of this session (see `pickModel`); fills the model panel. */
async function chooseModel(chosen) {
  const catalog = checkCatalog(await fetchJson(CATALOG_URL, 'the list of models'));
  const recorded = chosen && !chosen.isNew ? chosen.record.model || EARLIER_MODEL : null;
  model = pickModel(catalog, { recorded, requested: params.get('model') });
  Object.assign(ASSETS, { model: model.weights, transfer: model.samples, history: model.history });
  ui.modelChoice.replaceChildren(...catalog.models.map((m) => option(m.id, m.name)));
  ui.modelChoice.value = model.id;
  ui.modelAbout.textContent = model.about || '';
  ui.freezeBackbone.hidden = !hasBackboneChoice();
  $('freeze-backbone-label').hidden = !hasBackboneChoice();
  document.body.dataset.modelId = model.id;
}

/**
 * Fills the training controls with the detector's defaults (the wasm
 * module's), until a project's saved settings say otherwise.
 */
function applyTrainDefaults(defaults) {
  ui.epochs.value = String(defaults.epochs);
  ui.untilHonored.checked = defaults.untilHonored;
  ui.batchSize.value = String(defaults.batchSize);
  ui.learningRate.value = String(defaults.learningRate);
  ui.freezeBackbone.checked = defaults.freezeBackbone;
  if ([...ui.rule.options].some((o) => o.value === defaults.rule)) ui.rule.value = defaults.rule;
}

/** Puts saved settings back on the controls before the images come back. */
function applySettings(saved = {}) {
  const set = (el, v) => {
    if (v !== undefined && v !== null && v !== '') el.value = String(v);
  };
  if (Number.isFinite(Number(saved.threshold)) && saved.threshold !== undefined) {
    ui.threshold.value = String(saved.threshold);
    threshold = Number(ui.threshold.value);
    ui.thresholdValue.textContent = threshold.toFixed(2);
  }
  if ([...ui.rule.options].some((o) => o.value === saved.rule)) ui.rule.value = saved.rule;
  set(ui.epochs, saved.epochs);
  if (typeof saved.untilHonored === 'boolean') ui.untilHonored.checked = saved.untilHonored;
  set(ui.batchSize, saved.batchSize);
  set(ui.learningRate, saved.learningRate);
  if (typeof saved.updateHistory === 'boolean') ui.updateHistory.checked = saved.updateHistory;
  if (typeof saved.freezeBackbone === 'boolean') ui.freezeBackbone.checked = saved.freezeBackbone;
  if (Array.isArray(saved.targetClasses)) {
    setTargetClasses(saved.targetClasses.map((n) => classNames.indexOf(String(n))).filter((c) => c >= 0));
  }
  if (saved.drawClass !== undefined && Number(saved.drawClass) < classNames.length) ui.drawClass.value = String(saved.drawClass);
  for (const [el, v] of [
    [ui.weightsFormat, saved.weightsFormat],
    [ui.labelFormat, saved.labelFormat],
  ]) {
    if ([...el.options].some((o) => o.value === v)) el.value = v;
  }
}

// ---------------------------------------------------------------- start

async function fetchBytes(url, what, onProgress) {
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`Could not load ${what} (${url}): ${messageOf(e)}`);
  }
  if (!res.ok) throw new Error(`Could not load ${what} (${url}): the server answered ${res.status} ${res.statusText}`.trim());
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body || !total || !onProgress) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const out = new Uint8Array(total);
  let got = 0;
  const chunks = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (got + value.length <= total) out.set(value, got);
    chunks.push(value);
    got += value.length;
    onProgress(got / total);
  }
  if (got === total) return out;
  const all = new Uint8Array(got);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return all;
}

async function fetchJson(url, what) {
  const bytes = await fetchBytes(url, what);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${what} (${url}) is not valid JSON: ${messageOf(e)}`);
  }
}

async function loadTransferSamples() {
  const listed = await fetchJson(`${ASSETS.transfer}index.json`, 'the list of sample images');
  if (!Array.isArray(listed)) throw new Error('The list of sample images is not an array of file names');
  const names = listed.slice(0, SAMPLE_LIMIT);
  for (let k = 0; k < names.length; k++) {
    const name = String(names[k]);
    setStatus(`Loading sample image ${k + 1} of ${names.length}: ${name}`, { progress: k / names.length });
    try {
      const bytes = await fetchBytes(ASSETS.transfer + encodeURIComponent(name), `the sample image “${name}”`);
      await addImage(new Blob([bytes]), name, 'sample');
      if (images.length === 1) {
        // Show the first sample's boxes before loading the rest.
        const first = select(0);
        if (first) await first;
      }
    } catch (e) {
      showError(`Sample image “${name}” could not be opened`, e);
    }
  }
}

/** The name a sample of the sample history goes by in the session and the project. */
const historyId = (file) => `history:${file}`;

/**
 * Fills the session's history library: with the members a project's last
 * update left (sample history files and reviewed images of the project, by
 * name, in library order), else with the sample history.
 */
async function loadHistory() {
  const index = await fetchJson(`${ASSETS.history}index.json`, 'the list of history samples');
  // Either an array of samples or {about, samples}: `about` says where their boxes come from.
  const list = Array.isArray(index) ? index : index && index.samples;
  if (!Array.isArray(list)) throw new Error('The list of history samples is neither an array nor {about, samples}');
  historyAbout = index.about ? String(index.about) : '';
  ui.historyAbout.textContent = historyAbout ? `History library: ${historyAbout}.` : '';
  const byId = new Map(list.map((item) => [historyId(String(item && item.file)), item]));
  const saved = project && Array.isArray(project.record.history) ? project.record.history.map(String) : null;
  const ids = saved || [...byId.keys()].slice(0, HISTORY_LIMIT);
  const failures = [];
  for (const id of ids) {
    const entry = images.find((e) => e.id === id);
    try {
      if (byId.has(id)) {
        const file = String(byId.get(id).file);
        const bytes = await fetchBytes(ASSETS.history + encodeURIComponent(file), `the history image “${file}”`);
        const decoded = await decodeImage(new Blob([bytes]), file, Number.POSITIVE_INFINITY);
        const rgba = rgbaOf(decoded.bitmap);
        decoded.bitmap.close();
        const boxes = (byId.get(id).boxes || []).map((b) => ({ bbox: { ...b.bbox }, class: b.class }));
        await withSession((s) => s.addHistory(id, rgba, decoded.width, decoded.height, boxes));
      } else if (entry && isReviewed(entry)) {
        const rgba = rgbaOf(entry.bitmap);
        await withSession((s) => s.addHistorySample(id, rgba, entry.width, entry.height, entry.base.candidates, verdictsOf(entry), threshold));
      } else {
        throw new Error(entry ? 'the image is no longer reviewed' : 'it is neither a sample history file nor an image of this project');
      }
    } catch (e) {
      failures.push(`“${entry ? entry.name : id}”: ${sentence(messageOf(e))}`);
    }
  }
  if (failures.length) {
    showError(
      `${failures.length} of ${ids.length} history samples could not be added (training then protects less of what the model knew). First: ${failures[0]}`,
    );
  }
  await refreshStats();
}

/**
 * Starts filling the history library; training waits for it (`historyReady`),
 * and `data-history` on the body says `loading` until it is done, then `ready`.
 */
function startHistoryLoad() {
  document.body.dataset.history = 'loading';
  historyReady = loadHistory()
    .catch((e) => showError('The history samples could not be loaded', e))
    .finally(() => (document.body.dataset.history = 'ready'));
  return historyReady;
}

/** Starts an engine (a session in its worker) whose crash and device loss reach the page. */
function startEngine(bytes, preferWebgpu) {
  return Engine.create(ASSETS.pkg, bytes, preferWebgpu, { onCrash: onEngineCrash, onDeviceLost: switchToCpu });
}

function onEngineCrash(message) {
  globalThis.__veritunePanic(message);
}

/**
 * The GPU device was lost (a driver reset, an unplugged GPU): a CPU session
 * takes over from the weights after the last completed step, with every verdict and the
 * history samples; the images are predicted again on the CPU.
 */
async function switchToCpu(info) {
  if (gpuLost || crashMessage || facts.backend !== 'webgpu' || !wasm) return;
  const why = String(info.message || info.reason || 'no reason given').replace(/[.\s]+$/, '');
  gpuLost = `the GPU device was lost (${why})`;
  showError(`The GPU device was lost (${why}): veritune goes on on the CPU from the weights after the last completed training step`);
  let next;
  try {
    next = await startEngine(currentWeights, false);
  } catch (e) {
    globalThis.__veritunePanic(`The detector could not go on on the CPU after the GPU was lost: ${messageOf(e)}`);
    return;
  }
  facts.backend = 'cpu';
  facts.notice = gpuLost;
  showBackend();
  await adoptSession(next, 'Predicting again on the CPU');
}

/**
 * Makes `next` the session in place of the current one: every reviewed
 * image's verdicts and the history samples go to it, and every image is
 * predicted again with it.
 */
async function adoptSession(next, label) {
  await stopPredictLoop();
  await withSession(async (old) => {
    session = next;
    old.free();
  });
  for (const entry of images) {
    entry.inSession = false;
    entry.syncedKey = null;
    if (entry.latest) entry.stale = true;
    if (isReviewed(entry)) scheduleSync(entry);
  }
  await startHistoryLoad();
  if (!training) startPredictLoop(label);
}

/**
 * Goes on from weights the user exported earlier (burnpack or safetensors):
 * they are checked and loaded into a new session first, so a file that does
 * not fit (another model, other classes, truncated, newer) changes nothing.
 */
async function loadWeights(file) {
  if (!session || training || crashMessage || !wasm) return;
  setLocked(true);
  setStatus(`Loading the weights “${file.name}”…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let next;
    try {
      next = await startEngine(bytes, facts.backend === 'webgpu');
    } catch (e) {
      throw new Error(`${sentence(messageOf(e))} The current weights are kept`);
    }
    const names = next.classNames;
    if (names.join('\n') !== classNames.join('\n')) {
      next.free();
      throw new Error(
        `these weights detect ${names.join(', ')} but this project's classes are ${classNames.join(', ')}; the current weights are kept: start a new project to use them`,
      );
    }
    const saved = await next.exportWeights();
    await adoptSession(next, `Predicting with the weights “${file.name}”`);
    currentWeights = saved;
    weightsVersion += 1;
    if (project) {
      project.saveWeights(saved);
      project.record.weights = { bytes: saved.length, savedAt: new Date().toISOString() };
      project.record.weightsVersion = weightsVersion;
      persist();
    }
    document.body.dataset.model = 'loaded';
    setStatus(`Loaded the weights “${file.name}”; every image is predicted with them.`);
  } catch (e) {
    showError(`The weights “${file.name}” were not loaded`, e);
    idleStatus();
  } finally {
    setLocked(false);
  }
}

/**
 * After a finished run the history library is updated (METHOD.md section 3):
 * the reviewed images compete with its members by per-sample gradients, and
 * the project keeps the members' names so a reload restores the library.
 * Not after a cancelled run: cancelling asks for the page back now, while
 * the update computes a gradient per sample; the images compete after the
 * next finished run.
 */
async function updateHistory(run) {
  const finished = ui.trainStatus.textContent;
  ui.trainStatus.textContent = `${finished} Updating the history library…`;
  try {
    const update = await withSession((s) =>
      s.updateHistory((done, total) => {
        setStatus(`Updating the history library: gradient ${done} of ${total}`, { progress: done / total });
        ui.trainStatus.textContent = `${finished} Updating the history library: gradient ${done} of ${total}…`;
      }),
    );
    run.history = { offered: update.offered, admitted: update.admitted.length, evicted: update.evicted.length, size: update.members.length };
    const h = run.history;
    ui.trainStatus.textContent =
      `${finished} History library: ${h.admitted} of ${h.offered} reviewed image${h.offered === 1 ? '' : 's'} admitted, ` +
      `${h.evicted} evicted, ${h.size} samples.`;
    if (project) {
      project.saveProject({ history: update.members });
      project.saveRun(run);
    }
    await refreshStats();
  } catch (e) {
    ui.trainStatus.textContent = `${finished} The history library was not updated.`;
    showError('The history library could not be updated (it stays as it was)', e);
  }
}

function wireUi() {
  ui.weightsInput.addEventListener('change', () => {
    const [file] = ui.weightsInput.files;
    ui.weightsInput.value = '';
    if (file) loadWeights(file);
  });
  ui.fileInput.addEventListener('change', () => {
    const files = ui.fileInput.files;
    openFiles(files).finally(() => (ui.fileInput.value = ''));
  });
  ui.folderInput.addEventListener('change', () => {
    const files = ui.folderInput.files;
    openFiles(files).finally(() => (ui.folderInput.value = ''));
  });
  const ws = ui.workspace;
  ws.addEventListener('dragover', (ev) => {
    if (!ev.dataTransfer || ![...ev.dataTransfer.types].includes('Files')) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = locked ? 'none' : 'copy';
    ws.classList.add('dragover');
  });
  ws.addEventListener('dragleave', (ev) => {
    if (!ws.contains(ev.relatedTarget)) ws.classList.remove('dragover');
  });
  ws.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    ws.classList.remove('dragover');
    try {
      const { files } = await filesFromDrop(ev.dataTransfer);
      await openFiles(files);
    } catch (e) {
      showError('The dropped files could not be read', e);
    }
  });
  // Files dropped outside the workspace must not navigate away from the page.
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());

  ui.threshold.addEventListener('input', () => {
    threshold = Number(ui.threshold.value);
    ui.thresholdValue.textContent = threshold.toFixed(2);
    const entry = images[current];
    if (selection && selection.kind === 'shown' && entry && !shownOf(entry).includes(selection.index)) selection = null;
    updateAllThumbs();
    renderAll();
  });
  ui.modelChoice.addEventListener('change', () => switchModel(ui.modelChoice.value));
  ui.threshold.addEventListener('change', () => {
    for (const e of images) if (e.base && (e.inSession || isReviewed(e))) scheduleSync(e);
    persist();
  });
  for (const el of [ui.rule, ui.epochs, ui.untilHonored, ui.batchSize, ui.learningRate, ui.updateHistory, ui.freezeBackbone, ui.drawClass, ui.weightsFormat, ui.labelFormat]) {
    el.addEventListener('change', () => persist());
  }
  ui.projectsButton.addEventListener('click', openProjectsDialog);
  ui.saveState.addEventListener('click', () => project && project.flush());
  document.addEventListener('veritune:renamed', (ev) => {
    if (!project) return;
    project.saveProject({ name: ev.detail });
    showProjectName();
  });
  renderShortcuts($('shortcuts-list'));
  ui.shortcutsButton.addEventListener('click', showShortcuts);
  ui.undo.addEventListener('click', () => undoRedo('undo'));
  ui.redo.addEventListener('click', () => undoRedo('redo'));
  ui.zoomIn.addEventListener('click', () => zoomBy(1.5));
  ui.zoomOut.addEventListener('click', () => zoomBy(1 / 1.5));
  ui.zoomFit.addEventListener('click', zoomFit);
  ui.exportProject.addEventListener('click', exportProject);
  ui.exportLabels.addEventListener('click', exportLabels);
  for (const [input, fromFolder] of [
    [ui.labelsInput, false],
    [ui.labelsFolderInput, true],
  ]) {
    input.addEventListener('change', () => {
      const files = input.files;
      importLabels(files, fromFolder).finally(() => (input.value = ''));
    });
  }
  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener('change', () => {
      mode = r.value;
      renderCanvas();
    });
  }
  for (const r of document.querySelectorAll('input[name="view"]')) {
    r.addEventListener('change', () => {
      view = r.value;
      selection = null;
      renderAll();
    });
  }
  ui.prev.addEventListener('click', () => select(current - 1));
  ui.next.addEventListener('click', () => select(current + 1));
  ui.confirmAll.addEventListener('click', confirmAll);
  ui.rereview.addEventListener('click', rereview);
  ui.train.addEventListener('click', train);
  ui.cancelTrain.addEventListener('click', cancelTraining);
  ui.exportButton.addEventListener('click', exportAll);
  ui.canvas.addEventListener('pointerdown', onPointerDown);
  ui.canvas.addEventListener('pointermove', onPointerMove);
  ui.canvas.addEventListener('pointerup', onPointerUp);
  ui.canvas.addEventListener('wheel', onWheel, { passive: false });
  // No autoscroll on a middle-button press: it pans.
  ui.canvas.addEventListener('mousedown', (ev) => {
    if (ev.button === 1) ev.preventDefault();
  });
  ui.canvas.addEventListener('pointercancel', () => {
    drag = null;
    renderCanvas();
  });
  new ResizeObserver(() => {
    renderCanvas();
    for (const c of Object.values(charts)) c.draw();
  }).observe(ui.canvasWrap);

  document.addEventListener('keydown', onKeyDown);
  document.addEventListener('keyup', (ev) => {
    if (ev.key === ' ' && spaceHeld) {
      spaceHeld = false;
      renderCanvas();
    }
  });
  window.addEventListener('blur', () => {
    spaceHeld = false;
  });
}

function showShortcuts() {
  if (!ui.shortcutsDialog.open) ui.shortcutsDialog.showModal();
}

// ---------------------------------------------------------------- keyboard

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
  selection = sel;
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
  let sel = selection;
  if (!sel) sel = nextUnjudged(entry);
  if (!sel) {
    announce('Every shown box is judged.');
    return;
  }
  if (sel.kind === 'drawn') {
    selection = sel;
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
  const byName = classNames.indexOf(key);
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
  const b = entry && boxOf(entry, selection);
  if (!b) {
    ui.drawClass.value = String(cls);
    persist();
    announce(`New boxes get the class ${className(cls)}.`);
    return;
  }
  if (selection.kind === 'shown') {
    const d = entry.base.candidates[selection.index];
    if (cls === d.class && judgementKind(entry, selection.index) !== 'corrected') return;
  } else if (cls === b.class) {
    return;
  }
  applyBox(entry, selection, { ...b.bbox }, cls, { label: 'change class' });
  announce(`Class ${className(cls)}.`);
}

/** Arrow keys on a selected box: move it, or with Alt resize it (right and bottom edge). */
function nudge(entry, key, step, resize) {
  const b = boxOf(entry, selection);
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
  applyBox(entry, selection, box, b.class, {
    label: resize ? 'resize box' : 'move box',
    merge: `${resize ? 'resize' : 'move'}-${selection.kind}-${selection.index}`,
  });
}

/** B: a new drawn box in the middle of the view, selected, to move and resize with the keys. */
function addBoxByKey(entry) {
  layoutCanvas();
  const w = ui.canvasWrap.clientWidth / viewTf.scale;
  const h = ui.canvasWrap.clientHeight / viewTf.scale;
  const side = Math.max(MIN_BOX * 4, Math.min(w, h, entry.width, entry.height) / 4);
  const cx = Math.min(entry.width - side / 2, Math.max(side / 2, zoom.cx));
  const cy = Math.min(entry.height - side / 2, Math.max(side / 2, zoom.cy));
  const bbox = normalise({ x0: cx - side / 2, y0: cy - side / 2, x1: cx + side / 2, y1: cy + side / 2 }, entry.width, entry.height);
  addDrawn(entry, bbox, Number(ui.drawClass.value) || 0);
  announce(`Added a ${className(Number(ui.drawClass.value) || 0)} box in the middle: arrows move it, Alt and arrows resize it.`);
}

/** What each row of the key map (shortcuts.js) does, by its `action`. */
const KEY_ACTIONS = {
  stepImage: (ev) => select(current + (ev.key === 'ArrowLeft' || ev.key === 'PageUp' ? -1 : 1)),
  endImage: (ev) => select(ev.key === 'Home' ? 0 : images.length - 1),
  stepBox: (ev, entry) => {
    const order = boxOrder(entry);
    if (!order.length) return;
    const k = order.findIndex((o) => sameSel(o, selection));
    const next = k < 0 ? (ev.shiftKey ? order.length - 1 : 0) : (k + (ev.shiftKey ? -1 : 1) + order.length) % order.length;
    selectBox(entry, order[next]);
  },
  confirm: (ev, entry) => judgeByKey(entry, 'confirmed'),
  reject: (ev, entry) => judgeByKey(entry, 'rejected'),
  confirmAll: () => confirmAll(),
  classKey: (ev, entry) => setClassByKey(entry, ev.key),
  remove: (ev, entry) => {
    if (selection && selection.kind === 'drawn') {
      removeDrawn(entry, selection.index);
      announce('Drawn box removed.');
    } else if (selection && selection.kind === 'shown') {
      judgeByKey(entry, 'rejected');
    }
  },
  nudge: (ev, entry) => nudge(entry, ev.key, ev.shiftKey ? 10 : 1, ev.altKey),
  deselect: () => {
    drag = null;
    selection = null;
    renderAll();
  },
  toggleDraw: () => {
    mode = mode === 'draw' ? 'edit' : 'draw';
    document.querySelector(`input[name="mode"][value="${mode}"]`).checked = true;
    renderCanvas();
    announce(mode === 'draw' ? 'Drawing: drag on the image to draw a missed box.' : 'Selecting and editing boxes.');
  },
  addBox: (ev, entry) => addBoxByKey(entry),
  undo: (ev) => undoRedo(ev.shiftKey ? 'redo' : 'undo'),
  redo: () => undoRedo('redo'),
  zoomIn: () => zoomBy(1.5),
  zoomOut: () => zoomBy(1 / 1.5),
  zoomFit: () => zoomFit(),
  help: () => showShortcuts(),
};

function onKeyDown(ev) {
  if (document.querySelector('dialog[open]')) return;
  const t = ev.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
  // Space held pans with the mouse (a hold, not a shortcut of the key map).
  if (ev.key === ' ' && !(ev.ctrlKey || ev.metaKey) && !(t && (t.tagName === 'BUTTON' || t.tagName === 'A' || t.tagName === 'SUMMARY'))) {
    if (!spaceHeld) {
      spaceHeld = true;
      renderCanvas();
    }
    ev.preventDefault();
    return;
  }
  const entry = images[current];
  const editable = Boolean(entry && entry.base && !locked && view === 'review');
  const row = shortcutFor(ev, { editable, selected: editable && Boolean(boxOf(entry, selection)) });
  if (!row) return;
  KEY_ACTIONS[row.action](ev, entry);
  if (!row.keepDefault) ev.preventDefault();
}

function showBackend() {
  const { backend, notice } = facts;
  if (backend === 'webgpu') {
    ui.badge.textContent = 'WebGPU';
    ui.badge.className = 'badge webgpu';
  } else {
    const reason = notice || (PREFER_WEBGPU ? 'no reason given' : 'the CPU backend was requested with ?backend=cpu');
    ui.badge.textContent = `CPU (WebGPU unavailable: ${reason})`;
    ui.badge.className = 'badge cpu';
  }
  ui.badge.title = ui.badge.textContent;
  document.body.dataset.backend = backend;
}

async function start() {
  document.body.dataset.phase = 'starting';
  wireUi();
  setLocked(true);
  renderAll();
  try {
    setStatus('Loading the detector…', { progress: 0 });
    let mod;
    try {
      mod = await import(ASSETS.pkg);
      await mod.default();
      if (typeof mod.installPanicHook === 'function') mod.installPanicHook();
      wasm = mod;
    } catch (e) {
      throw new Error(`The detector's WebAssembly module (${ASSETS.pkg}) could not be loaded: ${messageOf(e)}`);
    }
    const chosen = await chooseProject();
    await chooseModel(chosen);
    if (chosen) {
      project = new OpenProject(store, { ...chosen.record, model: model.id }, onSaveState);
      project.onRunWritten = (run) => {
        if (run.interrupted) document.dispatchEvent(new CustomEvent('veritune:checkpoint', { detail: { step: run.checkpointed } }));
      };
      project.saveProject();
    }
    showProjectName();
    // A project that has trained goes on from its saved weights.
    let bytes = null;
    if (chosen && chosen.record.weights) {
      setStatus(`Loading the trained weights of “${chosen.record.name}”…`);
      bytes = await store.readWeights(chosen.record.id).catch((e) => {
        showError(`The saved weights of “${chosen.record.name}” could not be read (${messageOf(e)}); it goes on from the default model`);
        return null;
      });
    }
    const fromProject = Boolean(bytes);
    if (!bytes) {
      bytes = await fetchBytes(ASSETS.model, 'the detector model', (f) =>
        setStatus(`Loading the detector model… ${Math.round(f * 100)} %`, { progress: f }),
      );
    }
    setStatus(PREFER_WEBGPU ? 'Starting the detector (WebGPU if available)…' : 'Starting the detector on the CPU…');
    let problem = '';
    if (PREFER_WEBGPU) problem = await webgpuProblem().catch((e) => `WebGPU could not be queried (${messageOf(e)})`);
    try {
      session = await startEngine(bytes, PREFER_WEBGPU && !problem);
    } catch (e) {
      if (!fromProject) throw new Error(`The detector could not start: ${messageOf(e)}`);
      showError(`The saved weights of “${chosen.record.name}” could not be loaded (${messageOf(e)}); it goes on from the default model`);
      bytes = await fetchBytes(ASSETS.model, 'the detector model');
      session = await startEngine(bytes, PREFER_WEBGPU && !problem).catch((e2) => {
        throw new Error(`The detector could not start: ${messageOf(e2)}`);
      });
    }
    currentWeights = bytes;
    facts = {
      backend: session.backend,
      notice: problem || session.notice,
      // The hash of the meta-model the project started from, not of its trained weights.
      baseModelHash: (fromProject && chosen.record.baseModelHash) || session.baseModelHash,
      inputSize: session.inputSize,
    };
    document.body.dataset.model = fromProject ? 'project' : 'default';
    showBackend();
    applyTrainDefaults(await session.trainSettings({}));
    classNames = [...session.classNames];
    classPicker.setClasses(classNames, null);
    setTargetClasses(null);
    const resumed = chosen && !chosen.isNew && (chosen.record.summary?.images || 0) > 0;
    if (project) {
      const saved = project.record.classNames || [];
      if (resumed && saved.length && saved.join('\n') !== classNames.join('\n')) {
        showError(`“${project.record.name}” was labelled with the classes ${saved.join(', ')} but the model has ${classNames.join(', ')}; class numbers may not mean the same`);
      }
      project.saveProject({ baseModelHash: facts.baseModelHash, classNames });
    }
    if (resumed) {
      applySettings(project.record.settings);
      await restoreProject(fromProject || !chosen.record.weights);
      startHistoryLoad();
      setLocked(false);
      setPhase('ready');
      openNote = `Resumed “${project.record.name}”${fromProject ? ' with its trained weights' : ''}. `;
    } else {
      if (project) applySettings(project.record.settings);
      // Before the page is ready: a run started while the samples load waits for the history library.
      startHistoryLoad();
      setLocked(false);
      setPhase('ready');
      try {
        await loadTransferSamples();
      } catch (e) {
        showError('The sample images could not be loaded', e);
      }
    }
    startPredictLoop();
    refreshStats();
    idleStatus();
  } catch (e) {
    document.body.dataset.phase = 'failed';
    ui.badge.textContent = 'not started';
    showError(messageOf(e));
    setStatus('The detector did not start; see the error above.');
  }
}

// Read-only view for the browser tests: where the current image's boxes are
// on screen (CSS pixels relative to the canvas).
window.veritunePage = Object.freeze({
  /** Resolves when everything changed so far is saved: 'saved', 'failed', or 'none' without a project. */
  async saved() {
    if (!project) return 'none';
    await project.flush();
    return project.state;
  },
  /** The selected box in working-image pixels, or null. */
  selectedBox() {
    const entry = images[current];
    const b = entry && boxOf(entry, selection);
    return b ? { ...selection, bbox: { ...b.bbox }, class: b.class, width: entry.width, height: entry.height } : null;
  },
  zoom() {
    return { ...zoom, scale: viewTf.scale };
  },
  /** The current image's candidates (class, score, box) that its verdicts refer to. */
  candidates() {
    const entry = images[current];
    return entry && entry.base ? entry.base.candidates.map((c) => ({ ...c, bbox: { ...c.bbox } })) : null;
  },
  /** The current image's shown boxes (class, score, box), in list order. */
  shown() {
    const entry = images[current];
    return entry && entry.base ? shownOf(entry).map((i) => ({ ...entry.base.candidates[i], bbox: { ...entry.base.candidates[i].bbox } })) : null;
  },
  /** The current image's name, sizes and the boxes the user vouches for (confirmed, corrected, drawn). */
  labels() {
    const entry = images[current];
    if (!entry) return null;
    const { labels } = userBoxes(entry);
    return {
      name: entry.name,
      width: entry.width,
      height: entry.height,
      originalWidth: entry.originalWidth,
      originalHeight: entry.originalHeight,
      boxes: labels.map((l) => ({ bbox: { ...l.bbox }, class: l.class })),
    };
  },
  /** The names of the session's history members, in library order. */
  historyIds() {
    return withSession((s) => s.historyIds());
  },
  /** Where a box in working-image pixels is on screen (CSS pixels relative to the canvas). */
  imageToScreen(bbox) {
    return toScreen(bbox);
  },
  boxesOnScreen() {
    const entry = images[current];
    if (!entry || !entry.base) return [];
    const out = shownOf(entry).map((i, k) => ({ key: `shown-${k}`, ...toScreen(boxOf(entry, { kind: 'shown', index: i }).bbox) }));
    entry.drawn.forEach((d, k) => out.push({ key: `drawn-${k}`, ...toScreen(d.bbox) }));
    return out;
  },
});

start();
