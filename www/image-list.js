// The open images: thumbnails and their states, adding images, opening
// files, the current image and its caption.

import { decodeImage, drawThumbnail, looksLikeImage, displayName } from './images.js';
import { verdictsOfRecord } from './project.js';
import { applyVerdictState } from './verdict-state.js';
import { state, ui, images, runs } from './state.js';
import { messageOf, showError, setStatus, idleStatus } from './messages.js';
import { shownOf, isReviewed, localCategories } from './verdicts.js';
import { needsPrediction, predictOne, startPredictLoop } from './predictions.js';
import { renderCanvas } from './canvas.js';
import { renderBoxList } from './box-list.js';
import { persist } from './page-project.js';

/** The longer side of the working image; boxes are in its pixels. */
const MAX_SIDE = 1024;

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

/** Shows an image's state on its thumbnail. */
export function updateThumb(entry) {
  const el = entry.thumb;
  if (!el) return;
  const st = stateOf(entry);
  el.dataset.state = st.key;
  const stateEl = el.querySelector('.thumb-state');
  stateEl.textContent = st.short || st.text;
  stateEl.title = st.text;
  el.setAttribute('aria-label', `${entry.name}: ${st.text}`);
  el.setAttribute('aria-current', images[state.current] === entry ? 'true' : 'false');
}

/** Shows every image's state on its thumbnail. */
export function updateAllThumbs() {
  for (const e of images) updateThumb(e);
}

/**
 * Decodes and adds an image. `saved` is its stored record when a project is
 * resumed (its verdicts come back); otherwise the image is new and its bytes
 * and record are saved in the project.
 */
export async function addImage(blob, name, source, saved = null) {
  const decoded = await decodeImage(blob, name, MAX_SIDE);
  const entry = {
    id: saved ? saved.id : `img-${state.nextId++}`,
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
    applyVerdictState(entry, v);
    if (v.latest && v.latest.model === state.weightsVersion) entry.latest = v.latest;
    else if (v.latestIsBase && v.base && v.base.model === state.weightsVersion) entry.latest = v.base;
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

/** Opens the chosen or dropped files that are images, in name order, and predicts them. */
export async function openFiles(fileList) {
  if (state.locked) {
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
  state.openNote = parts.length ? `${parts.join('; ')}. ` : '';
  idleStatus();
  if (first) select(images.indexOf(first));
  startPredictLoop();
}

/** The current image's name, place and state, and the previous/next buttons. */
export function renderCaption() {
  const entry = images[state.current];
  ui.imageName.textContent = entry ? `${state.current + 1} / ${images.length}: ${entry.name}` : '';
  ui.imageState.textContent = entry ? stateOf(entry).text : '';
  ui.prev.disabled = state.current <= 0;
  ui.next.disabled = state.current < 0 || state.current >= images.length - 1;
  ui.viewChoice.hidden = !runs.length;
}

/** Redraws the canvas, the box list and the caption. */
export function renderAll() {
  renderCanvas();
  renderBoxList();
  renderCaption();
}

/** Makes image `index` the current one; returns its prediction's promise when it needs one now. */
export function select(index) {
  if (index < 0 || index >= images.length) return;
  const prev = images[state.current];
  state.current = index;
  state.selection = null;
  state.drag = null;
  if (prev !== images[state.current]) state.zoom = { k: 1, cx: null, cy: null };
  if (prev) updateThumb(prev);
  const entry = images[state.current];
  updateThumb(entry);
  entry.thumb.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  renderAll();
  if (state.project && state.project.record.current !== entry.id) persist();
  return needsPrediction(entry) && !state.loop ? predictOne(entry) : null;
}
