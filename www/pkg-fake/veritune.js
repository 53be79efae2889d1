// A FAKE of the wasm-bindgen module www/pkg/veritune.js, for UI work and fast
// browser tests only (the page loads it with ?fake=1). It implements the same
// Session API in plain JS: deterministic pseudo-random boxes per image, fake
// training steps on timers, and "learning" that moves the predictions towards
// the user's verdicts. Nothing here is the detector.

import { shownIndices } from '../boxes.js';

const MAGIC = 'VERITUNE-FAKE-MODEL';
const CLASS_NAMES = ['square', 'disc', 'bar'];
const INPUT_SIZE = 256;
const RULES = ['symmetric', 'transfer-only', 'replay', 'agem', 'pcgrad', 'smooth'];

const params = new URLSearchParams(globalThis.location ? globalThis.location.search : '');
const STEP_MS = Number(params.get('fakeStepMs') || 40);
const PREDICT_MS = Number(params.get('fakePredictMs') || 30);
/** ?fakePanic=train: a Rust-like panic at the second training step (the promise never settles). */
const PANIC = params.get('fakePanic') || '';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export default async function init() {
  await sleep(5);
}

export function installPanicHook() {}

function panic(message) {
  console.error(`veritune crashed: ${message}`);
  if (typeof globalThis.__veritunePanic === 'function') globalThis.__veritunePanic(`veritune crashed: ${message}`);
  return new Promise(() => {});
}

function hashPixels(rgba, width, height) {
  let h = 2166136261 ^ width ^ (height << 16);
  const stride = Math.max(1, Math.floor(rgba.length / 4096));
  for (let i = 0; i < rgba.length; i += stride) {
    h ^= rgba[i];
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

function rng(seed) {
  let s = seed || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function checkRgba(rgba, width, height) {
  if (!(rgba instanceof Uint8Array)) throw new Error('The image pixels must be a Uint8Array.');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`The image size ${width} x ${height} is not valid.`);
  }
  if (rgba.length !== width * height * 4) {
    throw new Error(
      `The image has ${rgba.length} bytes but ${width} x ${height} RGBA needs ${width * height * 4}.`,
    );
  }
}

function checkBox(b, what) {
  const ok = b && ['x0', 'y0', 'x1', 'y1'].every((k) => Number.isFinite(b[k]));
  if (!ok) throw new Error(`${what} has no valid bbox.`);
  if (!(b.x1 > b.x0 && b.y1 > b.y0)) throw new Error(`${what} is empty (zero width or height).`);
}

export class Session {
  constructor(backend, notice) {
    this._backend = backend;
    this._notice = notice;
    this._samples = new Map();
    this._history = 0;
    this._generation = 0;
    this._training = false;
    this._cancel = false;
  }

  static async create(modelBytes, preferWebgpu) {
    await sleep(20);
    if (!(modelBytes instanceof Uint8Array)) throw new Error('The model must be given as bytes.');
    const head = new TextDecoder().decode(modelBytes.subarray(0, MAGIC.length));
    if (head !== MAGIC) {
      throw new Error('The model file is not a veritune model (the fake pkg reads only model.fake).');
    }
    let backend = 'cpu';
    let notice = '';
    if (!preferWebgpu) {
      notice = 'the CPU backend was requested';
    } else if (!('gpu' in navigator)) {
      notice = 'this browser has no WebGPU (navigator.gpu is missing)';
    } else {
      const adapter = await navigator.gpu.requestAdapter().catch(() => null);
      if (adapter) backend = 'webgpu';
      else notice = 'no WebGPU adapter was found';
    }
    return new Session(backend, notice);
  }

  backend() {
    return this._backend;
  }
  notice() {
    return this._notice;
  }
  classNames() {
    return [...CLASS_NAMES];
  }
  inputSize() {
    return INPUT_SIZE;
  }
  baseModelHash() {
    return 'fa4e0000000000000000000000000000000000000000000000000000000000fa';
  }

  async predict(rgba, width, height, threshold) {
    checkRgba(rgba, width, height);
    await sleep(PREDICT_MS);
    const key = hashPixels(rgba, width, height);
    const rand = rng(key);
    const candidates = [];
    const n = 5 + Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) {
      const w = width * (0.12 + rand() * 0.3);
      const h = height * (0.12 + rand() * 0.3);
      const x0 = rand() * (width - w);
      const y0 = rand() * (height - h);
      const det = {
        bbox: { x0, y0, x1: x0 + w, y1: y0 + h },
        class: Math.floor(rand() * CLASS_NAMES.length),
        score: 0.05 + rand() * 0.93,
      };
      candidates.push(det);
      if (rand() < 0.4) {
        // A near duplicate for NMS to suppress.
        const d = 3 + rand() * 5;
        candidates.push({
          bbox: { x0: x0 + d, y0: y0 + d, x1: x0 + w + d, y1: y0 + h - d },
          class: det.class,
          score: Math.max(0.05, det.score - 0.05),
        });
      }
    }
    // Make sure the first sample shows something at the default threshold.
    if (!candidates.some((c) => c.score >= 0.5)) candidates[0].score = 0.8;
    if (candidates.filter((c) => c.score >= 0.5).length < 2) candidates[1].score = 0.7;

    // "Learning": after training, a trained image leans towards its verdicts.
    const learned = this._generation > 0 ? [...this._samples.values()].find((s) => s.key === key) : null;
    let out = candidates;
    if (learned) {
      out = [];
      const rejected = learned.verdicts.shown.filter((b) => b.judgement && b.judgement.kind === 'rejected');
      for (const c of candidates) {
        const isRejected = rejected.some(
          (r) => r.detection.class === c.class && Math.abs(r.detection.bbox.x0 - c.bbox.x0) < 1e-3,
        );
        out.push(isRejected ? { ...c, score: c.score * 0.2 } : c);
      }
      for (const label of learned.labels) out.push({ bbox: { ...label.bbox }, class: label.class, score: 0.93 });
    }
    out = out.filter((c) => c.score >= 0.05);
    const shown = shownIndices(out, threshold).map((i) => out[i]);
    return { shown, candidates: out };
  }

  setSample(id, rgba, width, height, candidates, verdicts, threshold = 0.5) {
    if (!(threshold > 0 && threshold < 1)) throw new Error(`The threshold ${threshold} is not in (0, 1).`);
    if (this._training) throw new Error('Samples cannot change while training runs.');
    checkRgba(rgba, width, height);
    if (!Array.isArray(candidates)) throw new Error('The candidates must be an array.');
    if (!verdicts || !Array.isArray(verdicts.shown) || !Array.isArray(verdicts.drawn)) {
      throw new Error('The verdicts must have "shown" and "drawn" lists.');
    }
    const labels = [];
    let rejected = false;
    verdicts.shown.forEach((b, i) => {
      const j = b.judgement;
      if (!j) throw new Error(`Shown box ${i + 1} has no verdict yet: confirm, reject or correct it.`);
      if (j.kind === 'confirmed') labels.push({ bbox: b.detection.bbox, class: b.detection.class });
      else if (j.kind === 'rejected') rejected = true;
      else if (j.kind === 'corrected') {
        checkBox(j.label && j.label.bbox, `The correction of shown box ${i + 1}`);
        labels.push(j.label);
      } else throw new Error(`Shown box ${i + 1} has an unknown verdict "${j.kind}".`);
    });
    verdicts.drawn.forEach((d, i) => {
      checkBox(d.bbox, `Drawn box ${i + 1}`);
      if (!(d.class >= 0 && d.class < CLASS_NAMES.length)) throw new Error(`Drawn box ${i + 1} has no valid class.`);
      labels.push(d);
    });
    const categories = [];
    if (verdicts.drawn.length) categories.push('missed_detection');
    if (rejected) categories.push('false_detection');
    if (!categories.length) categories.push('correct');
    this._samples.set(String(id), {
      key: hashPixels(rgba, width, height),
      verdicts: JSON.parse(JSON.stringify(verdicts)),
      labels,
      categories,
    });
    return { categories };
  }

  removeSample(id) {
    if (this._training) throw new Error('Samples cannot change while training runs.');
    this._samples.delete(String(id));
  }

  addHistory(rgba, width, height, boxes) {
    checkRgba(rgba, width, height);
    if (!Array.isArray(boxes)) throw new Error('History boxes must be an array.');
    boxes.forEach((b, i) => checkBox(b.bbox, `History box ${i + 1}`));
    this._history += 1;
  }

  stats() {
    let correct = 0;
    let missed = 0;
    let falseDetections = 0;
    for (const s of this._samples.values()) {
      if (s.categories.includes('correct')) correct += 1;
      if (s.categories.includes('missed_detection')) missed += 1;
      if (s.categories.includes('false_detection')) falseDetections += 1;
    }
    return { samples: this._samples.size, correct, missed, falseDetections, history: this._history };
  }

  async train(options, onStep) {
    if (this._training) throw new Error('Training is already running.');
    const { epochs, rule, batchSize, learningRate } = options || {};
    if (!RULES.includes(rule)) throw new Error(`Unknown mixing rule "${rule}".`);
    if (!(epochs >= 1) || !(batchSize >= 1)) {
      throw new Error(`Batch size and epochs must be at least 1 (got batch size ${batchSize}, epochs ${epochs}).`);
    }
    if (!(learningRate > 0)) throw new Error('The learning rate must be positive.');
    const n = this._samples.size;
    if (n === 0) throw new Error('There are no reviewed images to train on.');
    const perEpoch = Math.ceil(n / batchSize);
    const total = epochs * perEpoch;
    this._training = true;
    this._cancel = false;
    const records = [];
    try {
      for (let k = 0; k < total; k++) {
        if (this._cancel) return { records, cancelled: true };
        await sleep(STEP_MS);
        if (PANIC === 'train' && k === 1) await panic('fake panic at step 2 (?fakePanic=train)');
        const t = k / Math.max(1, total - 1);
        const hasHistory = this._history > 0 && rule !== 'transfer-only';
        const similarity = Math.sin(k * 0.9) * 0.6;
        let aT = 1;
        let aH = hasHistory ? 1 : 0;
        if (rule === 'symmetric' && similarity < 0) {
          aT = 1 - similarity * 0.3;
          aH = 1 - similarity * 0.3;
        }
        const record = {
          epoch: Math.floor(k / perEpoch),
          step: k,
          transfer_loss: 2.2 * Math.exp(-2.5 * t) + 0.1 * Math.abs(Math.sin(k * 1.7)),
          history_loss: hasHistory ? 1.1 + 0.15 * Math.sin(k) + 0.1 * t : null,
          mix: { similarity, a_t: aT, a_h: aH, norm_t: 3 - t, norm_h: hasHistory ? 2 : 0 },
          skipped: false,
        };
        records.push(record);
        if (onStep) onStep(record, k + 1, total);
      }
      this._generation += 1;
      return { records, cancelled: false };
    } finally {
      if (records.length && this._cancel) this._generation += 1;
      this._training = false;
    }
  }

  cancel() {
    this._cancel = true;
  }

  async exportWeights() {
    await sleep(20);
    return new TextEncoder().encode(
      `VERITUNE-FAKE-ADAPTED generation=${this._generation} samples=${this._samples.size}\n`,
    );
  }

  free() {}
}
