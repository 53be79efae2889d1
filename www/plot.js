// Small line charts drawn on a <canvas>, no library. A chart has named series
// of numbers (null = no value at that step) and redraws from scratch.

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{label: string, color: string, dash?: number[]}[]} series
   * @param {{title: string, yMin?: number, yMax?: number}} options
   */
  constructor(canvas, series, options) {
    this.canvas = canvas;
    this.series = series.map((s) => ({ ...s, values: [] }));
    this.options = options;
    this.draw();
  }

  clear() {
    for (const s of this.series) s.values = [];
    this.draw();
  }

  /** Appends one value per series (in the order given to the constructor). */
  push(...values) {
    this.series.forEach((s, i) => {
      const v = values[i];
      s.values.push(typeof v === 'number' && Number.isFinite(v) ? v : null);
    });
    this.draw();
  }

  /** How many points have been pushed. */
  get length() {
    return this.series.length ? this.series[0].values.length : 0;
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 300;
    const cssH = canvas.clientHeight || 150;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, cssW, cssH);

    const pad = { left: 44, right: 8, top: 20, bottom: 18 };
    const w = cssW - pad.left - pad.right;
    const h = cssH - pad.top - pad.bottom;

    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = '#222';
    ctx.textBaseline = 'top';
    ctx.fillText(this.options.title, pad.left, 3);

    // Legend, right-aligned on the title line.
    let lx = cssW - pad.right;
    for (const s of [...this.series].reverse()) {
      const tw = ctx.measureText(s.label).width;
      lx -= tw;
      ctx.fillStyle = '#222';
      ctx.fillText(s.label, lx, 3);
      lx -= 18;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      ctx.moveTo(lx, 10);
      ctx.lineTo(lx + 14, 10);
      ctx.stroke();
      ctx.setLineDash([]);
      lx -= 10;
    }

    canvas.dataset.points = String(this.length);
    const all = this.series.flatMap((s) => s.values.filter((v) => v !== null));
    const n = this.length;
    let yMin = this.options.yMin ?? (all.length ? Math.min(...all) : 0);
    let yMax = this.options.yMax ?? (all.length ? Math.max(...all) : 1);
    if (all.length) {
      yMin = Math.min(yMin, ...all);
      yMax = Math.max(yMax, ...all);
    }
    if (yMax - yMin < 1e-9) {
      yMax += 0.5;
      yMin -= 0.5;
    }

    // Axes and grid.
    ctx.strokeStyle = '#ccc';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.left, pad.top);
    ctx.lineTo(pad.left, pad.top + h);
    ctx.lineTo(pad.left + w, pad.top + h);
    ctx.stroke();
    ctx.fillStyle = '#555';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (const [v, y] of [
      [yMax, pad.top],
      [(yMin + yMax) / 2, pad.top + h / 2],
      [yMin, pad.top + h],
    ]) {
      ctx.fillText(formatTick(v), pad.left - 4, y);
      ctx.strokeStyle = '#eee';
      ctx.beginPath();
      ctx.moveTo(pad.left + 1, y);
      ctx.lineTo(pad.left + w, y);
      ctx.stroke();
    }
    if (yMin < 0 && yMax > 0) {
      const y0 = pad.top + h * (yMax / (yMax - yMin));
      ctx.strokeStyle = '#999';
      ctx.beginPath();
      ctx.moveTo(pad.left + 1, y0);
      ctx.lineTo(pad.left + w, y0);
      ctx.stroke();
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillText(n ? `step ${n}` : 'no steps yet', pad.left + 2, pad.top + h + 3);
    ctx.textAlign = 'start';

    if (!n) return;
    const xOf = (i) => pad.left + (n === 1 ? w / 2 : (i / (n - 1)) * w);
    const yOf = (v) => pad.top + h - ((v - yMin) / (yMax - yMin)) * h;
    for (const s of this.series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 1.5;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      let open = false;
      s.values.forEach((v, i) => {
        if (v === null) {
          open = false;
          return;
        }
        if (open) ctx.lineTo(xOf(i), yOf(v));
        else ctx.moveTo(xOf(i), yOf(v));
        open = true;
      });
      ctx.stroke();
      ctx.setLineDash([]);
      if (n <= 40) {
        s.values.forEach((v, i) => {
          if (v === null) return;
          ctx.fillRect(xOf(i) - 1.5, yOf(v) - 1.5, 3, 3);
        });
      }
    }
  }
}

function formatTick(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 10000)) return v.toExponential(1);
  if (a >= 100) return v.toFixed(0);
  return v.toFixed(2);
}
