// The canvas: layout, zoom and pan, the image with its boxes, hit tests,
// and box editing with the pointer.

import { normalise, area } from './boxes.js';
import { state, ui, images } from './state.js';
import { setStatus } from './messages.js';
import { className, shownOf, userBoxes, boxOf, applyBox, addDrawn } from './verdicts.js';
import { renderAll } from './image-list.js';

/** Smallest drawn or corrected box side, in working-image pixels. */
export const MIN_BOX = 3;
const HANDLE_PX = 9;
const COLORS = {
  unjudged: '#f59e0b',
  confirmed: '#16a34a',
  rejected: '#dc2626',
  corrected: '#2563eb',
  drawn: '#c026d3',
  now: '#f97316',
  label: '#e5e7eb',
};
/** Zoom range, relative to fitting the image in the view. */
const ZOOM_MIN = 1;
const ZOOM_MAX = 40;

/** Sizes the canvas to its box and places the current image in it (`viewTf`); returns the size in CSS pixels and the pixel ratio. */
export function layoutCanvas() {
  const dpr = window.devicePixelRatio || 1;
  const w = ui.canvasWrap.clientWidth;
  const h = ui.canvasWrap.clientHeight;
  if (ui.canvas.width !== Math.round(w * dpr) || ui.canvas.height !== Math.round(h * dpr)) {
    ui.canvas.width = Math.round(w * dpr);
    ui.canvas.height = Math.round(h * dpr);
  }
  const entry = images[state.current];
  if (entry) {
    const fit = Math.min(w / entry.width, h / entry.height) || 1;
    const scale = fit * state.zoom.k;
    clampZoom(entry, w, h, scale);
    state.viewTf = { scale, ox: w / 2 - state.zoom.cx * scale, oy: h / 2 - state.zoom.cy * scale };
  }
  return { w, h, dpr };
}

/** Keeps the view on the image: centred along an axis that fits, else no empty margin. */
function clampZoom(entry, w, h, scale) {
  const axis = (c, size, view) => {
    if (c === null || size * scale <= view) return size / 2;
    const half = view / 2 / scale;
    return Math.max(half, Math.min(size - half, c));
  };
  state.zoom.cx = axis(state.zoom.cx, entry.width, w);
  state.zoom.cy = axis(state.zoom.cy, entry.height, h);
}

/** Zooms by `factor` keeping the image point under (sx, sy) (CSS pixels in the canvas; default: the centre) in place. */
export function zoomBy(factor, sx = null, sy = null) {
  const entry = images[state.current];
  if (!entry) return;
  const w = ui.canvasWrap.clientWidth;
  const h = ui.canvasWrap.clientHeight;
  if (sx === null) {
    sx = w / 2;
    sy = h / 2;
  }
  layoutCanvas();
  const p = { x: (sx - state.viewTf.ox) / state.viewTf.scale, y: (sy - state.viewTf.oy) / state.viewTf.scale };
  const k = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, state.zoom.k * factor));
  const scale = (state.viewTf.scale / state.zoom.k) * k;
  state.zoom = { k, cx: (w / 2 - sx) / scale + p.x, cy: (h / 2 - sy) / scale + p.y };
  renderCanvas();
}

/** Shows the whole image. */
export function zoomFit() {
  state.zoom = { k: 1, cx: null, cy: null };
  renderCanvas();
}

/** Moves the view by (dx, dy) CSS pixels. */
function pan(dx, dy) {
  if (!images[state.current]) return;
  state.zoom.cx -= dx / state.viewTf.scale;
  state.zoom.cy -= dy / state.viewTf.scale;
  renderCanvas();
}

/** Where a box in working-image pixels is on the canvas (CSS pixels). */
export const toScreen = (b) => ({
  x: state.viewTf.ox + b.x0 * state.viewTf.scale,
  y: state.viewTf.oy + b.y0 * state.viewTf.scale,
  w: (b.x1 - b.x0) * state.viewTf.scale,
  h: (b.y1 - b.y0) * state.viewTf.scale,
});

function toImage(ev) {
  const r = ui.canvas.getBoundingClientRect();
  return {
    x: (ev.clientX - r.left - state.viewTf.ox) / state.viewTf.scale,
    y: (ev.clientY - r.top - state.viewTf.oy) / state.viewTf.scale,
  };
}

function drawBox(ctx, bbox, color, { dash = null, width = 2, label = null } = {}) {
  const s = toScreen(bbox);
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  if (dash) ctx.setLineDash(dash);
  ctx.strokeRect(s.x, s.y, s.w, s.h);
  ctx.restore();
  if (label) {
    ctx.save();
    ctx.font = '12px system-ui, sans-serif';
    const tw = ctx.measureText(label).width + 6;
    const th = 16;
    const ly = s.y - th >= 0 ? s.y - th : s.y;
    ctx.fillStyle = color;
    ctx.fillRect(s.x - width / 2, ly, tw, th);
    ctx.fillStyle = '#fff';
    ctx.textBaseline = 'middle';
    ctx.fillText(label, s.x + 3 - width / 2, ly + th / 2);
    ctx.restore();
  }
}

function handlesOf(bbox) {
  const { x0, y0, x1, y1 } = bbox;
  const mx = (x0 + x1) / 2;
  const my = (y0 + y1) / 2;
  return [
    ['nw', x0, y0],
    ['n', mx, y0],
    ['ne', x1, y0],
    ['e', x1, my],
    ['se', x1, y1],
    ['s', mx, y1],
    ['sw', x0, y1],
    ['w', x0, my],
  ];
}

/** Draws the current image with its boxes (review or now), the selection and its handles. */
export function renderCanvas() {
  const { w, h, dpr } = layoutCanvas();
  const ctx = ui.canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#2b2f36';
  ctx.fillRect(0, 0, w, h);
  const entry = images[state.current];
  let drawn = 0;
  ui.canvas.classList.toggle('draw', state.mode === 'draw' && state.view === 'review');
  ui.canvas.classList.toggle('locked', state.locked);
  ui.canvas.classList.toggle('pan', state.spaceHeld || (state.drag && state.drag.kind === 'pan'));
  ui.zoomValue.textContent = `${Math.round(state.zoom.k * 100)} %`;
  ui.zoomOut.disabled = !entry || state.zoom.k <= ZOOM_MIN;
  ui.zoomIn.disabled = !entry || state.zoom.k >= ZOOM_MAX;
  ui.zoomFit.disabled = !entry || state.zoom.k === ZOOM_MIN;
  if (!entry) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = state.session ? 'Open images to begin.' : 'Loading…';
    ui.canvas.dataset.boxes = '0';
    ui.canvas.dataset.predicted = 'false';
    return;
  }
  // Zoomed far in, show the pixels as they are: boxes are placed on them.
  ctx.imageSmoothingEnabled = state.viewTf.scale < 3;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(entry.bitmap, state.viewTf.ox, state.viewTf.oy, entry.width * state.viewTf.scale, entry.height * state.viewTf.scale);

  if (state.view === 'now' && entry.latest) {
    const { labels } = userBoxes(entry);
    for (const l of labels) drawBox(ctx, l.bbox, COLORS.confirmed, { dash: [4, 3], width: 1.5 });
    for (const i of shownOf(entry, entry.latest.candidates)) {
      const d = entry.latest.candidates[i];
      drawBox(ctx, d.bbox, COLORS.now, { label: `${className(d.class)} ${d.score.toFixed(2)}` });
      drawn += 1;
    }
  } else if (entry.base) {
    for (const i of shownOf(entry)) {
      const d = entry.base.candidates[i];
      const j = entry.judgements.get(i);
      const kind = j ? j.kind : 'unjudged';
      const label = `${className(d.class)} ${d.score.toFixed(2)}`;
      if (kind === 'corrected') {
        drawBox(ctx, d.bbox, '#9ca3af', { dash: [3, 3], width: 1 });
        const box = dragBoxFor({ kind: 'shown', index: i }) || j.label.bbox;
        drawBox(ctx, box, COLORS.corrected, { label: `${className(j.label.class)} (corrected)` });
      } else {
        const box = dragBoxFor({ kind: 'shown', index: i }) || d.bbox;
        drawBox(ctx, box, COLORS[kind], {
          dash: kind === 'rejected' ? [6, 4] : null,
          label: kind === 'rejected' ? `${label} ✗` : label,
        });
      }
      drawn += 1;
    }
    entry.drawn.forEach((d, k) => {
      const box = dragBoxFor({ kind: 'drawn', index: k }) || d.bbox;
      drawBox(ctx, box, COLORS.drawn, { label: `${className(d.class)} (drawn)` });
      drawn += 1;
    });
    if (state.drag && state.drag.kind === 'draw' && state.drag.box) drawBox(ctx, state.drag.box, COLORS.drawn, { dash: [4, 3] });
    const sel = boxOf(entry, state.selection);
    if (sel) {
      const box = (state.drag && state.drag.box && state.drag.kind !== 'draw' ? state.drag.box : null) || sel.bbox;
      const s = toScreen(box);
      ctx.save();
      ctx.strokeStyle = '#fff';
      ctx.lineWidth = 1;
      ctx.setLineDash([2, 2]);
      ctx.strokeRect(s.x - 3, s.y - 3, s.w + 6, s.h + 6);
      ctx.setLineDash([]);
      for (const [, hx, hy] of handlesOf(box)) {
        const px = state.viewTf.ox + hx * state.viewTf.scale;
        const py = state.viewTf.oy + hy * state.viewTf.scale;
        ctx.fillStyle = '#fff';
        ctx.fillRect(px - HANDLE_PX / 2, py - HANDLE_PX / 2, HANDLE_PX, HANDLE_PX);
        ctx.strokeStyle = '#111';
        ctx.strokeRect(px - HANDLE_PX / 2, py - HANDLE_PX / 2, HANDLE_PX, HANDLE_PX);
      }
      ctx.restore();
    }
  }
  ui.canvas.dataset.boxes = String(drawn);
  ui.canvas.dataset.predicted = entry.base ? 'true' : 'false';
  if (entry.predicting && !entry.base) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = 'Predicting…';
  } else if (entry.predictError && !entry.base) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = 'No prediction for this image (see the error above).';
  } else if (!entry.base) {
    ui.overlay.hidden = false;
    ui.overlay.textContent = 'Waiting for prediction…';
  } else {
    ui.overlay.hidden = true;
  }
}

function dragBoxFor(sel) {
  if (!state.drag || !state.drag.box || state.drag.kind === 'draw' || !state.drag.sel) return null;
  return state.drag.sel.kind === sel.kind && state.drag.sel.index === sel.index ? state.drag.box : null;
}

function hitTest(entry, p) {
  const tol = HANDLE_PX / state.viewTf.scale;
  const sel = boxOf(entry, state.selection);
  if (sel) {
    for (const [id, hx, hy] of handlesOf(sel.bbox)) {
      if (Math.abs(p.x - hx) <= tol && Math.abs(p.y - hy) <= tol) return { kind: 'resize', handle: id, sel: state.selection };
    }
  }
  if (state.mode === 'draw') return null;
  const hits = [];
  entry.drawn.forEach((d, k) => hits.push({ sel: { kind: 'drawn', index: k }, bbox: d.bbox }));
  for (const i of shownOf(entry)) {
    const b = boxOf(entry, { kind: 'shown', index: i });
    hits.push({ sel: { kind: 'shown', index: i }, bbox: b.bbox });
  }
  const inside = hits.filter(({ bbox }) => p.x >= bbox.x0 && p.x <= bbox.x1 && p.y >= bbox.y0 && p.y <= bbox.y1);
  if (!inside.length) return null;
  inside.sort((a, b) => area(a.bbox) - area(b.bbox));
  return { kind: 'move', sel: inside[0].sel };
}

/** Starts a pan, a box move or resize, or drawing a box. */
export function onPointerDown(ev) {
  const entry = images[state.current];
  // Pan: the middle button, or the left one while Space is held; at any time.
  if (entry && (ev.button === 1 || (ev.button === 0 && state.spaceHeld))) {
    ev.preventDefault();
    ui.canvas.focus();
    state.drag = { kind: 'pan', last: { x: ev.clientX, y: ev.clientY } };
    ui.canvas.setPointerCapture(ev.pointerId);
    renderCanvas();
    return;
  }
  if (!entry || !entry.base || state.view !== 'review' || ev.button !== 0) return;
  if (state.locked) {
    setStatus('Boxes cannot be edited while training runs.');
    return;
  }
  ui.canvas.focus();
  const p = toImage(ev);
  const hit = hitTest(entry, p);
  if (hit) {
    state.selection = hit.sel;
    const start = boxOf(entry, hit.sel);
    state.drag = { kind: hit.kind, handle: hit.handle, sel: hit.sel, start: p, origin: { ...start.bbox }, cls: start.class, box: null };
  } else if (state.mode === 'draw') {
    if (p.x < 0 || p.y < 0 || p.x > entry.width || p.y > entry.height) return;
    state.drag = { kind: 'draw', start: p, box: null };
  } else {
    state.selection = null;
    state.drag = null;
  }
  ui.canvas.setPointerCapture(ev.pointerId);
  renderAll();
}

/** Follows the pointer during a drag. */
export function onPointerMove(ev) {
  const entry = images[state.current];
  if (!state.drag || !entry) return;
  if (state.drag.kind === 'pan') {
    const dx = ev.clientX - state.drag.last.x;
    const dy = ev.clientY - state.drag.last.y;
    state.drag.last = { x: ev.clientX, y: ev.clientY };
    pan(dx, dy);
    return;
  }
  const p = toImage(ev);
  const dx = p.x - state.drag.start.x;
  const dy = p.y - state.drag.start.y;
  if (!state.drag.box && Math.hypot(dx, dy) * state.viewTf.scale < 3) return;
  const W = entry.width;
  const H = entry.height;
  if (state.drag.kind === 'draw') {
    state.drag.box = normalise({ x0: state.drag.start.x, y0: state.drag.start.y, x1: p.x, y1: p.y }, W, H);
  } else if (state.drag.kind === 'move') {
    const o = state.drag.origin;
    const mx = Math.max(-o.x0, Math.min(W - o.x1, dx));
    const my = Math.max(-o.y0, Math.min(H - o.y1, dy));
    state.drag.box = { x0: o.x0 + mx, y0: o.y0 + my, x1: o.x1 + mx, y1: o.y1 + my };
  } else if (state.drag.kind === 'resize') {
    const b = { ...state.drag.origin };
    const hd = state.drag.handle;
    if (hd.includes('w')) b.x0 = p.x;
    if (hd.includes('e')) b.x1 = p.x;
    if (hd.includes('n')) b.y0 = p.y;
    if (hd.includes('s')) b.y1 = p.y;
    state.drag.box = normalise(b, W, H);
  }
  renderCanvas();
}

/** Ends a drag: the moved, resized or drawn box becomes an edit. */
export function onPointerUp(ev) {
  const entry = images[state.current];
  const d = state.drag;
  state.drag = null;
  if (ui.canvas.hasPointerCapture(ev.pointerId)) ui.canvas.releasePointerCapture(ev.pointerId);
  if (!d || !entry) return;
  if (d.kind === 'pan') {
    renderCanvas();
    return;
  }
  const big = d.box && d.box.x1 - d.box.x0 >= MIN_BOX && d.box.y1 - d.box.y0 >= MIN_BOX;
  if (d.kind === 'draw') {
    if (big) {
      addDrawn(entry, d.box, Number(ui.drawClass.value) || 0);
      return;
    }
    if (d.box) setStatus(`No box drawn: a box needs at least ${MIN_BOX} pixels on each side; drag further.`);
  } else if (d.box && big) {
    applyBox(entry, d.sel, d.box, d.cls, { label: d.kind === 'move' ? 'move box' : 'resize box' });
    return;
  }
  renderAll();
}

/** Zooms around the pointer. */
export function onWheel(ev) {
  if (!images[state.current]) return;
  ev.preventDefault();
  const lines = ev.deltaMode === 1 ? 33 : ev.deltaMode === 2 ? 400 : 1;
  const r = ui.canvas.getBoundingClientRect();
  zoomBy(Math.exp(-ev.deltaY * lines * 0.002), ev.clientX - r.left, ev.clientY - r.top);
}
