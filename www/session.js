// The session (the engine in its worker): the queue every call goes
// through, a crash, starting engines, a lost GPU device (a CPU session goes
// on), weights loaded from a file, the backend badge.

import { Engine } from './engine.js';
import { state, PREFER_WEBGPU, ASSETS, ui, images } from './state.js';
import { setPhase, messageOf, sentence, showError, setStatus, idleStatus } from './messages.js';
import { isReviewed, scheduleSync } from './verdicts.js';
import { startPredictLoop, stopPredictLoop } from './predictions.js';
import { setLocked } from './training.js';
import { persist } from './page-project.js';
import { startHistoryLoad } from './startup.js';

// The session answers one call at a time, in order: every session call goes
// through this queue (cancel() is the one exception).
let chain = Promise.resolve();
// A crash (a Rust panic in the engine's worker or in the page's module) calls
// globalThis.__veritunePanic, which rejects this, and every session call
// races against it so nothing waits forever.
let crashWith = null;
const crashed = new Promise((_, reject) => (crashWith = reject));
crashed.catch(() => {});

/** Runs `fn(session)` after every session call queued before it; rejects after a crash. */
export function withSession(fn) {
  const p = chain.then(() => (state.crashMessage ? Promise.reject(new Error(state.crashMessage)) : Promise.race([fn(state.session), crashed])));
  chain = p.catch(() => {});
  return p;
}

globalThis.__veritunePanic = (message) => {
  if (state.crashMessage) return;
  state.crashMessage = `${sentence(String(message))} Reload the page to start again (your images were not sent anywhere)`;
  crashWith(new Error(state.crashMessage));
  showError(state.crashMessage);
  state.training = false;
  setPhase('failed');
  setStatus('The detector stopped working; reload the page.');
  setLocked(true);
  ui.train.disabled = true;
  ui.exportButton.disabled = true;
  ui.exportLabels.disabled = true;
  ui.cancelTrain.disabled = true;
};

/** Shows the session's sample counts (correct, missed, false, samples, history). */
export async function refreshStats() {
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

/** Starts an engine (a session in its worker) whose crash and device loss reach the page. */
export function startEngine(bytes, preferWebgpu) {
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
  if (state.gpuLost || state.crashMessage || state.facts.backend !== 'webgpu' || !state.wasm) return;
  const why = String(info.message || info.reason || 'no reason given').replace(/[.\s]+$/, '');
  state.gpuLost = `the GPU device was lost (${why})`;
  showError(`The GPU device was lost (${why}): veritune goes on on the CPU from the weights after the last completed training step`);
  let next;
  try {
    next = await startEngine(state.currentWeights, false);
  } catch (e) {
    globalThis.__veritunePanic(`The detector could not go on on the CPU after the GPU was lost: ${messageOf(e)}`);
    return;
  }
  state.facts.backend = 'cpu';
  state.facts.notice = state.gpuLost;
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
    state.session = next;
    old.free();
  });
  for (const entry of images) {
    entry.inSession = false;
    entry.syncedKey = null;
    if (entry.latest) entry.stale = true;
    if (isReviewed(entry)) scheduleSync(entry);
  }
  await startHistoryLoad();
  if (!state.training) startPredictLoop(label);
}

/**
 * Goes on from weights the user exported earlier (burnpack or safetensors):
 * they are checked and loaded into a new session first, so a file that does
 * not fit (another model, other classes, truncated, newer) changes nothing.
 */
export async function loadWeights(file) {
  if (!state.session || state.training || state.crashMessage || !state.wasm) return;
  setLocked(true);
  setStatus(`Loading the weights “${file.name}”…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let next;
    try {
      next = await startEngine(bytes, state.facts.backend === 'webgpu');
    } catch (e) {
      throw new Error(`${sentence(messageOf(e))} The current weights are kept`);
    }
    const names = next.classNames;
    if (names.join('\n') !== state.classNames.join('\n')) {
      next.free();
      throw new Error(
        `these weights detect ${names.join(', ')} but this project's classes are ${state.classNames.join(', ')}; the current weights are kept: start a new project to use them`,
      );
    }
    const saved = await next.exportWeights();
    await adoptSession(next, `Predicting with the weights “${file.name}”`);
    state.currentWeights = saved;
    state.weightsVersion += 1;
    if (state.project) {
      state.project.saveWeights(saved);
      state.project.record.weights = { bytes: saved.length, savedAt: new Date().toISOString() };
      state.project.record.weightsVersion = state.weightsVersion;
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

/** The badge of the backend the session runs on (and why not WebGPU). */
export function showBackend() {
  const { backend, notice } = state.facts;
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
