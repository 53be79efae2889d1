// The box list beside the canvas: each box of the current image with its
// verdict buttons and class.

import { state, ui, images } from './state.js';
import { className, shownOf, setJudgement, boxOf, applyBox, removeDrawn } from './verdicts.js';
import { renderAll } from './image-list.js';

/** Lists the current image's boxes with their verdict buttons and class (the latest prediction's boxes in the now view). */
export function renderBoxList() {
  const entry = images[state.current];
  const list = ui.boxList;
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement : null;
  const focusKey = focused ? `${focused.closest('li')?.dataset.box}|${focused.dataset.action}` : null;
  list.replaceChildren();
  ui.confirmAll.disabled = state.locked || !entry || !entry.base || state.view !== 'review';
  ui.rereview.hidden = !(entry && entry.latest && entry.base && entry.latest !== entry.base && !entry.stale);
  ui.rereview.disabled = state.locked;
  if (!entry) return;
  const add = (li) => list.append(li);
  if (state.view === 'now') {
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
    const label = `${className(d.class)} ${d.score.toFixed(2)}` + (kind === 'corrected' ? ` → ${className(j.label.class)}` : '');
    add(boxItem(`shown-${k}`, kind, { kind: 'shown', index: i }, `#${k + 1}`, label, kind === 'unjudged' ? 'not judged' : kind, actions));
  });
  entry.drawn.forEach((d, k) => {
    const actions = document.createElement('div');
    actions.className = 'box-actions';
    const desc = `drawn box ${k + 1} (${className(d.class)})`;
    actions.append(
      classSelect(d.class, `Class of ${desc}`, (c) => applyBox(entry, { kind: 'drawn', index: k }, { ...d.bbox }, c)),
      actionButton('Remove', 'remove', `Remove ${desc}`, false, () => removeDrawn(entry, k)),
    );
    add(boxItem(`drawn-${k}`, 'drawn', { kind: 'drawn', index: k }, `+${k + 1}`, className(d.class), 'drawn (missed)', actions));
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

/** A box's item of the list (`key`: its `data-box`; `sel`: the box); a click beside its controls selects the box. */
function boxItem(key, judgement, sel, number, labelText, stateText, actions) {
  const li = document.createElement('li');
  li.dataset.box = key;
  li.dataset.judgement = judgement;
  if (state.selection && state.selection.kind === sel.kind && state.selection.index === sel.index) li.classList.add('selected');
  const num = document.createElement('span');
  num.textContent = number;
  const label = document.createElement('span');
  label.className = 'box-label';
  label.textContent = labelText;
  const stateEl = document.createElement('span');
  stateEl.className = 'box-state';
  stateEl.textContent = stateText;
  li.append(num, label, stateEl, actions);
  li.addEventListener('click', (ev) => {
    if (ev.target.closest('button, select')) return;
    state.selection = { ...sel };
    renderAll();
  });
  return li;
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
  b.disabled = state.locked;
  b.addEventListener('click', () => {
    if (!state.locked) onClick();
  });
  return b;
}

/** An `<option>` of a select. */
export function option(value, text) {
  const o = document.createElement('option');
  o.value = String(value);
  o.textContent = text;
  return o;
}

function classSelect(value, label, onChange) {
  const s = document.createElement('select');
  s.dataset.action = 'class';
  s.setAttribute('aria-label', label);
  s.append(...state.classNames.map((n, c) => option(c, n)));
  s.value = String(value);
  s.disabled = state.locked;
  s.addEventListener('change', () => {
    if (!state.locked) onChange(Number(s.value));
  });
  return s;
}
