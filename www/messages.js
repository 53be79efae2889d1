// What the page says: errors as sentences in the alert area, the status
// line, the page's phase (for tests and styling), words for screen readers.

import { state, ui, images } from './state.js';

/** The page's phase for tests and styling; a crash is final. */
export function setPhase(phase) {
  if (document.body.dataset.phase === 'failed' && state.crashMessage) return;
  document.body.dataset.phase = phase;
}

/** The text of an error, a string or anything thrown. */
export function messageOf(e) {
  if (e instanceof Error) return e.message || String(e);
  if (typeof e === 'string') return e;
  if (e && typeof e.message === 'string') return e.message;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

/** `text` as a sentence: trimmed, with a full stop at the end. */
export function sentence(text) {
  const t = String(text).trim();
  if (!t) return 'Something went wrong.';
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** Shows an error as a readable sentence in the alert area (never only in the console). */
export function showError(context, e) {
  const text = e === undefined ? sentence(context) : `${context}: ${sentence(messageOf(e))}`;
  // After a crash every pending call fails with the same message: say it once.
  if (state.crashMessage && text !== sentence(state.crashMessage) && text.includes(state.crashMessage)) return;
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

/** What the status line's Stop button does, or null when it is hidden. */
let statusCancel = null;
/** The status line; `progress` in [0, 1] shows a bar, `cancel` a Stop button. */
export function setStatus(text, { progress = null, cancel = null } = {}) {
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

/** The status line between tasks: how many images are open and reviewed (nothing while training or after a crash). */
export function idleStatus() {
  if (state.training || state.crashMessage) return;
  const n = images.length;
  const reviewed = images.filter((e) => e.inSession).length;
  setStatus(
    state.openNote +
    (n
      ? `${n} image${n === 1 ? '' : 's'} open, ${reviewed} reviewed. Judge the boxes, then press Train.`
      : 'Open images to begin.'),
  );
}

/** Says something to screen readers (the canvas has no text of its own). */
export function announce(text) {
  ui.canvasLive.textContent = text;
}
