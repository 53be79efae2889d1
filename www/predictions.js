// Predictions: the detector's boxes on every open image that needs them,
// the current one first, in the background.

import { rgbaOf } from './images.js';
import { state, images } from './state.js';
import { messageOf, sentence, showError, setStatus, idleStatus } from './messages.js';
import { withSession } from './session.js';
import { updateThumb, renderAll } from './image-list.js';
import { persist } from './page-project.js';

function normalisePrediction(result) {
  const candidates = Array.isArray(result && result.candidates) ? result.candidates : [];
  const shown = Array.isArray(result && result.shown) ? result.shown : [];
  // The shown boxes are a subset of the candidates; keep both consistent.
  const all = candidates.length ? candidates : shown;
  return { candidates: all.map((d) => ({ bbox: { ...d.bbox }, class: d.class, score: d.score })) };
}

/** Whether the image has no prediction of the current weights yet (and none is under way or failed). */
export function needsPrediction(entry) {
  return (!entry.latest || entry.stale) && !entry.predicting && !entry.predictError;
}

/** Predicts the boxes of one image with the current weights. */
export async function predictOne(entry) {
  entry.predicting = true;
  updateThumb(entry);
  if (images[state.current] === entry) renderAll();
  try {
    const result = await withSession(async (s) => {
      const rgba = rgbaOf(entry.bitmap);
      return s.predict(rgba, entry.width, entry.height, state.threshold);
    });
    let pred = { ...normalisePrediction(result), model: state.weightsVersion };
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
    if (images[state.current] === entry) renderAll();
  }
}

/** Predicts every image that needs it, the current one first. Resolves when done or stopped. */
export function startPredictLoop(label = 'Predicting') {
  if (state.loop) return state.loop.promise;
  const l = { cancelled: false };
  l.promise = (async () => {
    document.body.dataset.predicting = 'true';
    let done = 0;
    for (;;) {
      if (l.cancelled) break;
      const cur = images[state.current];
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
    if (state.loop === l) state.loop = null;
    delete document.body.dataset.predicting;
    idleStatus();
  });
  state.loop = l;
  return l.promise;
}

/** Stops the prediction loop after the current image; resolves when it has stopped. */
export function stopPredictLoop() {
  if (!state.loop) return Promise.resolve({ cancelled: false });
  state.loop.cancelled = true;
  return state.loop.promise;
}
