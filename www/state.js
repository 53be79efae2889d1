// What the page's concerns share: its elements (`ui`), the address's flags,
// the wasm module's and the model's files, and `state`, the one object of the
// values that more than one concern reads or changes (the session, the
// current image, the selection, the threshold, the lock…); the open images,
// the training runs and the undo stack.

import { UndoStack } from './undo.js';

/** The address's flags (see app.js). */
export const params = new URLSearchParams(location.search);
/** Whether the session tries WebGPU (not with `?backend=cpu`). */
export const PREFER_WEBGPU = params.get('backend') !== 'cpu';
/** The wasm module, and the chosen model's files (set at start from models.json). */
export const ASSETS = { pkg: './pkg/veritune.js', model: '', transfer: '', history: '' };

/** The page's element of that id. */
export const $ = (id) => document.getElementById(id);
/** The page's elements that the modules use. */
export const ui = {
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

/** The values that more than one of the page's concerns reads or changes. */
export const state = {
  /** The engine: the wasm session in its worker (www/engine.js). */
  session: null,
  /** The wasm module on the page, for its rules that need no model (which boxes are shown, checks). */
  wasm: null,
  /** The session's current weights as last read (burnpack bytes): where a CPU session after a lost GPU starts from. */
  currentWeights: null,
  /** Why the GPU device was lost; '' while it is not. */
  gpuLost: '',
  /** What the session said about itself at start (read once: no calls while it is busy). */
  facts: { backend: '', notice: '', baseModelHash: '', inputSize: 0 },
  /** The model's class names, by class index. */
  classNames: [],
  /** The classes the user reviews (sorted indices), or null for every class. */
  targetClasses: null,
  /** The model the page runs (an entry of models.json). */
  model: null,
  /** What the history samples are, as their index says (shown beside the model). */
  historyAbout: '',
  /** The display threshold: boxes scored at or above it are shown. */
  threshold: Number(ui.threshold.value),
  mode: 'edit', // 'edit' | 'draw'
  view: 'review', // 'review' | 'now'
  locked: true, // no editing (starting, training)
  /** Whether a training run is under way. */
  training: false,
  /** The number of the next opened image's id (`img-N`). */
  nextId: 1,
  /** The index of the current image in `images`; -1 before any. */
  current: -1,
  /** Selected box on the current image: {kind: 'shown'|'drawn', index} */
  selection: null,
  /** The pointer drag under way on the canvas (pan, draw, move, resize), or null. */
  drag: null,
  /** Resolves when the history library is filled (training waits for it). */
  historyReady: Promise.resolve(),
  /** The project store (null when this browser cannot save) and the project open in this tab. */
  store: null,
  /** @type {OpenProject|null} */
  project: null,
  /** Zoom relative to fit, and the image point at the centre of the view (null: the image's centre). */
  zoom: { k: 1, cx: null, cy: null },
  /** Whether Space is held (the mouse then pans). */
  spaceHeld: false,
  /**
   * How many times the weights changed (training runs, loaded weight files, a
   * project's saved weights that could not be loaded): every prediction
   * carries it as its `model`, so that a resumed project reuses the
   * predictions of its current weights instead of predicting every image again.
   */
  weightsVersion: 0,
  /** What the last opening of files left to say (skipped files), shown until the next one. */
  openNote: '',
  /** What the page says after a crash (every later session call fails with it); '' before one. */
  crashMessage: '',
  /** The prediction loop under way (`{cancelled, promise}`), or null. */
  loop: null,
  /** Where the image is drawn: CSS pixels of the canvas per image pixel, and the offset. */
  viewTf: { scale: 1, ox: 0, oy: 0 },
};

/**
 * The open images, in thumbnail order.
 * @type {ImageEntry[]}
 */
export const images = [];
/** The training runs of this project, oldest first. */
export const runs = [];
/** Undo and redo of verdict and box edits. */
export const undoStack = new UndoStack();

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
