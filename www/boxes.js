// Box geometry for drawing and editing on the canvas. Boxes are
// {x0, y0, x1, y1} in working-image pixels. Which boxes are shown, and
// whether predictions honor the verdicts, are the wasm module's rules
// (`shownIndices`, `checkVerdicts`).

/** The area of a box (zero when its corners are out of order). */
export function area(b) {
  return Math.max(0, b.x1 - b.x0) * Math.max(0, b.y1 - b.y0);
}

/** Clamps a box into [0, w] x [0, h] and orders its corners. */
export function normalise(b, w, h) {
  const x0 = Math.max(0, Math.min(w, Math.min(b.x0, b.x1)));
  const x1 = Math.max(0, Math.min(w, Math.max(b.x0, b.x1)));
  const y0 = Math.max(0, Math.min(h, Math.min(b.y0, b.y1)));
  const y1 = Math.max(0, Math.min(h, Math.max(b.y0, b.y1)));
  return { x0, y0, x1, y1 };
}
