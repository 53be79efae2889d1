// An image's verdict state as plain data: the prediction its verdicts refer
// to (`base`), its judgements as [candidate index, judgement] pairs, its
// drawn boxes and whether the user touched it. The one shape of an undo
// step's before and after and of the verdict part of a project's image
// record; the image entry holds the same, its judgements in a Map.

/** The verdict state of an image entry (a copy: later edits do not change it). */
export function verdictState(entry) {
  return {
    base: entry.base,
    judgements: [...entry.judgements.entries()].map(([i, j]) => [i, structuredClone(j)]),
    drawn: entry.drawn.map((d) => ({ bbox: { ...d.bbox }, class: d.class })),
    touched: Boolean(entry.touched),
  };
}

/** Puts a verdict state (a copy of it) on an image entry. */
export function applyVerdictState(entry, v) {
  entry.base = v.base;
  entry.judgements = new Map(v.judgements.map(([i, j]) => [i, structuredClone(j)]));
  entry.drawn = v.drawn.map((d) => ({ bbox: { ...d.bbox }, class: d.class }));
  entry.touched = v.touched;
}
