// The engine's side of www/engine.js: a dedicated module worker that owns
// the wasm `Session`s (the model, the reviewed samples, the history library),
// so that predictions and training steps never hold up the page. One worker
// serves the page for its lifetime: a new session (other weights, the CPU
// after a lost GPU) starts in it without fetching the module again.
//
// Messages in: `{id, session, method, args}`, answered by `{id, result}` or
// `{id, error}`; `{id, progress}` reports a callback of `train` or
// `updateHistory`. `{cancel: session}` stops that session's run after its
// current step and is handled at once, between steps. Messages out without
// an id: `{panic}` (the module crashed) and `{deviceLost}` (the GPU device
// is gone).

import { onDeviceLost, requestSubgroups } from './webgpu.js';

/** The live sessions by the key the page gave them. */
const sessions = new Map();
/** The wasm module, loading or loaded. */
let wasm = null;

function messageOf(e) {
  if (e instanceof Error) return e.message || String(e);
  if (typeof e === 'string') return e;
  if (e && typeof e.message === 'string') return e.message;
  return String(e);
}

/** The byte buffers in `value` that can move to the page instead of being copied. */
function transferables(value) {
  return value instanceof Uint8Array && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? [value.buffer] : [];
}

function progressReporter(id) {
  return (...args) => self.postMessage({ id, progress: args }, args.flatMap(transferables));
}

/** Loads the module once, with its panic hook and WebGPU's device requests adjusted. */
function loadModule(pkgUrl) {
  wasm ??= import(pkgUrl).then(async (mod) => {
    await mod.default();
    mod.installPanicHook();
    requestSubgroups();
    onDeviceLost((info) => self.postMessage({ deviceLost: { message: String(info.message || ''), reason: String(info.reason || '') } }));
    return mod;
  });
  return wasm;
}

/** Starts session `key`; resolves with what the page shows and asks about it. */
async function create(key, pkgUrl, bytes, preferWebgpu) {
  const session = await (await loadModule(pkgUrl)).Session.create(bytes, preferWebgpu);
  sessions.set(key, session);
  return {
    backend: String(session.backend()),
    notice: String(session.notice() || ''),
    classNames: Array.from(session.classNames(), String),
    inputSize: Number(session.inputSize()),
    baseModelHash: String(session.baseModelHash()),
  };
}

/** Runs one method of session `key`; `train` and `updateHistory` report their callbacks as progress. */
function dispatch(id, key, method, args) {
  if (method === 'create') return create(key, ...args);
  const session = sessions.get(key);
  if (!session) throw new Error('this detector session has ended');
  if (method === 'free') {
    sessions.delete(key);
    return session.free();
  }
  if (method === 'train') return session.train(args[0], progressReporter(id));
  if (method === 'updateHistory') return session.updateHistory(progressReporter(id));
  if (typeof session[method] !== 'function') throw new Error(`the engine has no method ${method}`);
  return session[method](...args);
}

globalThis.__veritunePanic = (message) => self.postMessage({ panic: String(message) });

self.addEventListener('message', async (ev) => {
  const { id, session, method, args, cancel } = ev.data;
  if (cancel !== undefined) {
    sessions.get(cancel)?.cancel();
    return;
  }
  try {
    const result = await dispatch(id, session, method, args);
    self.postMessage({ id, result }, transferables(result));
  } catch (e) {
    self.postMessage({ id, error: messageOf(e) });
  }
});
