// Box geometry for the page: IoU and matching of predictions against the
// user's verdicts for the before/after figures (which boxes are shown is the
// wasm module's `shownIndices`). Boxes are {x0, y0, x1, y1} in working-image
// pixels.

/** IoU at which a prediction counts as the same object as a user's box. */
export const MATCH_IOU = 0.5;

export function area(b) {
  return Math.max(0, b.x1 - b.x0) * Math.max(0, b.y1 - b.y0);
}

export function iou(a, b) {
  const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  const inter = w > 0 && h > 0 ? w * h : 0;
  const union = area(a) + area(b) - inter;
  return union <= 0 ? 0 : Math.min(1, Math.max(0, inter / union));
}

/** Greedy one-to-one matching by descending IoU of same-class boxes; returns the matched count. */
export function countMatches(predictions, labels, minIou = MATCH_IOU) {
  const pairs = [];
  predictions.forEach((p, i) => {
    labels.forEach((l, j) => {
      if (p.class !== l.class) return;
      const v = iou(p.bbox, l.bbox);
      if (v >= minIou) pairs.push([v, i, j]);
    });
  });
  pairs.sort((a, b) => b[0] - a[0]);
  const usedP = new Set();
  const usedL = new Set();
  let n = 0;
  for (const [, i, j] of pairs) {
    if (usedP.has(i) || usedL.has(j)) continue;
    usedP.add(i);
    usedL.add(j);
    n += 1;
  }
  return n;
}

/** Clamps a box into [0, w] x [0, h] and orders its corners. */
export function normalise(b, w, h) {
  const x0 = Math.max(0, Math.min(w, Math.min(b.x0, b.x1)));
  const x1 = Math.max(0, Math.min(w, Math.max(b.x0, b.x1)));
  const y0 = Math.max(0, Math.min(h, Math.min(b.y0, b.y1)));
  const y1 = Math.max(0, Math.min(h, Math.max(b.y0, b.y1)));
  return { x0, y0, x1, y1 };
}

export function sameBox(a, b) {
  return a.x0 === b.x0 && a.y0 === b.y0 && a.x1 === b.x1 && a.y1 === b.y1;
}
