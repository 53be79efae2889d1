// The page's handle on the engine: wasm `Session`s running in one worker
// (www/engine-worker.js), so that nothing the user does waits on a
// prediction or a training step. Every method answers with a promise; the
// calls mirror `Session`'s (src/wasm.rs), and what a session says about
// itself at the start (backend, classes, input size) is read once.

const WORKER_URL = new URL('./engine-worker.js', import.meta.url);

/** The worker and the calls waiting for it; started with the first session. */
class EngineWorker {
  constructor() {
    this.worker = new Worker(WORKER_URL, { type: 'module' });
    this.pending = new Map();
    this.nextId = 1;
    this.nextSession = 1;
    this.crashed = '';
    this.crashListeners = [];
    this.lostListeners = [];
    this.worker.addEventListener('message', (ev) => this.receive(ev.data));
    this.worker.addEventListener('error', (ev) => {
      ev.preventDefault();
      this.crash(`veritune crashed: ${ev.message || 'the engine worker failed'}`);
    });
    this.worker.addEventListener('messageerror', () => this.crash('veritune crashed: a message from the engine could not be read'));
  }

  receive(data) {
    if (data.panic !== undefined) return this.crash(data.panic);
    if (data.deviceLost) return [...this.lostListeners].forEach((listener) => listener(data.deviceLost));
    const call = this.pending.get(data.id);
    if (!call) return;
    if ('progress' in data) return call.onProgress && call.onProgress(...data.progress);
    this.pending.delete(data.id);
    if ('error' in data) call.reject(new Error(data.error));
    else call.resolve(data.result);
  }

  crash(message) {
    if (this.crashed) return;
    this.crashed = String(message);
    const error = new Error(this.crashed);
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
    this.crashListeners.forEach((listener) => listener(this.crashed));
  }

  call(session, method, args, onProgress) {
    if (this.crashed) return Promise.reject(new Error(this.crashed));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, session, method, args });
    });
  }
}

let shared = null;

/** One session in the engine's worker; `Engine.create` starts it. */
export class Engine {
  /**
   * Starts a session from model bytes (burnpack or safetensors), on WebGPU
   * when `preferWebgpu` and available. `onCrash(message)` is called if the
   * engine stops working, `onDeviceLost(info)` when its GPU device is lost.
   * Rejects, leaving nothing running, when the bytes do not load.
   */
  static async create(pkgUrl, bytes, preferWebgpu, { onCrash = () => {}, onDeviceLost = () => {} } = {}) {
    shared ??= new EngineWorker();
    const engine = new Engine(shared, shared.nextSession++);
    if (!shared.crashListeners.includes(onCrash)) shared.crashListeners.push(onCrash);
    shared.lostListeners.push((info) => {
      if (engine.backend !== 'webgpu' || engine.lost) return;
      engine.lost = true;
      onDeviceLost(info);
    });
    const facts = await engine.call('create', [new URL(pkgUrl, location.href).href, bytes, preferWebgpu]);
    /** `"webgpu"` or `"cpu"`. */
    engine.backend = facts.backend;
    /** Why the CPU fallback is used; empty on WebGPU. */
    engine.notice = facts.notice;
    /** The model's class names. */
    engine.classNames = facts.classNames;
    /** Square input side of the model in pixels. */
    engine.inputSize = facts.inputSize;
    /** Digest of the model bytes it started from. */
    engine.baseModelHash = facts.baseModelHash;
    return engine;
  }

  constructor(worker, key) {
    this.worker = worker;
    this.key = key;
    this.backend = '';
    this.lost = false;
  }

  call(method, args = [], onProgress = null) {
    return this.worker.call(this.key, method, args, onProgress);
  }

  /** Whether this session's GPU device is lost, waiting up to `ms` for the worker to say so. */
  deviceLostWithin(ms) {
    if (this.lost) return Promise.resolve(true);
    const listeners = this.worker.lostListeners;
    return new Promise((resolve) => {
      // Removed once answered, so waits after every run do not pile up.
      const answer = (lost) => {
        clearTimeout(timer);
        const at = listeners.indexOf(onLost);
        if (at >= 0) listeners.splice(at, 1);
        resolve(lost);
      };
      const onLost = () => answer(true);
      const timer = setTimeout(() => answer(this.lost), ms);
      listeners.push(onLost);
    });
  }

  /** Ends the session, after the calls sent before. */
  free() {
    return this.call('free').catch(() => {});
  }

  /** Stops a running training after its current step; answered between steps, not queued behind the run. */
  cancel() {
    this.worker.worker.postMessage({ cancel: this.key });
  }

  /** Boxes on an RGBA image: `{shown, candidates}` in image pixels. */
  predict(rgba, width, height, threshold) {
    return this.call('predict', [rgba, width, height, threshold]);
  }

  /** Reviews an image (verdicts on its candidates) into a verified sample; see `Session.setSample`. */
  setSample(id, rgba, width, height, candidates, verdicts, threshold) {
    return this.call('setSample', [id, rgba, width, height, candidates, verdicts, threshold]);
  }

  /** Drops the verified sample of image `id`. */
  removeSample(id) {
    return this.call('removeSample', [id]);
  }

  /** Adds a history sample from labelled boxes. */
  addHistory(id, rgba, width, height, boxes) {
    return this.call('addHistory', [id, rgba, width, height, boxes]);
  }

  /** Adds a history sample from a reviewed image. */
  addHistorySample(id, rgba, width, height, candidates, verdicts, threshold) {
    return this.call('addHistorySample', [id, rgba, width, height, candidates, verdicts, threshold]);
  }

  /** The names of the history members, in library order. */
  historyIds() {
    return this.call('historyIds');
  }

  /** Counts of verified samples, verdicts and history members. */
  stats() {
    return this.call('stats');
  }

  /** How many of the history library's boxes are still shown at `threshold`. */
  historyAgreement(threshold) {
    return this.call('historyAgreement', [threshold]);
  }

  /** The settings a run with `options` would have, defaults filled in; rejects on an option out of range. */
  trainSettings(options) {
    return this.call('trainSettings', [options]);
  }

  /** Trains; `onStep(record, done, total, weights, check)` after each step. */
  train(options, onStep) {
    return this.call('train', [options], onStep);
  }

  /** Updates the history library by gradients; `onProgress(done, total)` after each. */
  updateHistory(onProgress) {
    return this.call('updateHistory', [], onProgress);
  }

  /** The current weights as `format` bytes (`"burnpack"` by default, or `"safetensors"`). */
  exportWeights(format) {
    return this.call('exportWeights', [format]);
  }

  /** The reviewed labels of `images` as a file of `format`. */
  exportLabels(format, images) {
    return this.call('exportLabels', [format, images]);
  }

  /** Reads label files (`files`) for the open `images`. */
  importLabels(files, images) {
    return this.call('importLabels', [files, images]);
  }
}
