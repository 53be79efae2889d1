// What start-up loads: files from the server, the model of this session
// and its training defaults, the sample images, the history library.

import { decodeImage, rgbaOf } from './images.js';
import { CATALOG_URL, EARLIER_MODEL, checkCatalog, pickModel } from './models.js';
import { state, params, ASSETS, $, ui, images } from './state.js';
import { messageOf, sentence, showError, setStatus } from './messages.js';
import { withSession, refreshStats } from './session.js';
import { verdictsOf, isReviewed } from './verdicts.js';
import { addImage, select } from './image-list.js';
import { option } from './box-list.js';
import { hasBackboneChoice } from './training.js';

/** The positive whole number a flag of the address gives, else Infinity (no limit). */
const limitParam = (name) => (/^[1-9][0-9]*$/.test(params.get(name) ?? '') ? Number(params.get(name)) : Infinity);
/** `?samples=N` opens only the model's first N sample images (a quicker start); all of them otherwise. */
const SAMPLE_LIMIT = limitParam('samples');
/**
 * `?history=N` starts the history library with only the first N sample history
 * images (quicker training checks on a slow device); all of them otherwise.
 */
const HISTORY_LIMIT = limitParam('history');

/** Reads models.json and picks the model of this session (see `pickModel`); fills the model panel. */
export async function chooseModel(chosen) {
  const catalog = checkCatalog(await fetchJson(CATALOG_URL, 'the list of models'));
  const recorded = chosen && !chosen.isNew ? chosen.record.model || EARLIER_MODEL : null;
  state.model = pickModel(catalog, { recorded, requested: params.get('model') });
  Object.assign(ASSETS, { model: state.model.weights, transfer: state.model.samples, history: state.model.history });
  ui.modelChoice.replaceChildren(...catalog.models.map((m) => option(m.id, m.name)));
  ui.modelChoice.value = state.model.id;
  ui.modelAbout.textContent = state.model.about || '';
  ui.freezeBackbone.hidden = !hasBackboneChoice();
  $('freeze-backbone-label').hidden = !hasBackboneChoice();
  document.body.dataset.modelId = state.model.id;
}

/**
 * Fills the training controls with the detector's defaults (the wasm
 * module's), until a project's saved settings say otherwise.
 */
export function applyTrainDefaults(defaults) {
  ui.epochs.value = String(defaults.epochs);
  ui.untilHonored.checked = defaults.untilHonored;
  ui.batchSize.value = String(defaults.batchSize);
  ui.learningRate.value = String(defaults.learningRate);
  ui.freezeBackbone.checked = defaults.freezeBackbone;
  if ([...ui.rule.options].some((o) => o.value === defaults.rule)) ui.rule.value = defaults.rule;
}

/** The bytes at `url` (`what` names it in errors); `onProgress(fraction)` while they come. */
export async function fetchBytes(url, what, onProgress) {
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

/** Opens the model's sample images (the first `?samples=N`), showing the first one's boxes before the rest load. */
export async function loadTransferSamples() {
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
  state.historyAbout = index.about ? String(index.about) : '';
  ui.historyAbout.textContent = state.historyAbout ? `History library: ${state.historyAbout}.` : '';
  const byId = new Map(list.map((item) => [historyId(String(item && item.file)), item]));
  const saved = state.project && Array.isArray(state.project.record.history) ? state.project.record.history.map(String) : null;
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
        await withSession((s) => s.addHistorySample(id, rgba, entry.width, entry.height, entry.base.candidates, verdictsOf(entry), state.threshold));
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
export function startHistoryLoad() {
  document.body.dataset.history = 'loading';
  state.historyReady = loadHistory()
    .catch((e) => showError('The history samples could not be loaded', e))
    .finally(() => (document.body.dataset.history = 'ready'));
  return state.historyReady;
}
