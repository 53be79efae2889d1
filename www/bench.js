// The browser half of the speed benchmark (bench.html): times one model's
// forward pass, training steps and history gradient in this browser, on
// WebGPU or on the CPU fallback, with the same measures as `veritune bench
// speed` (src/benchmark/speed.rs), and optionally TensorFlow.js's forward
// pass of the same network. scripts/bench-browser drives it.
//
// Every measure runs `warmup` untimed and `repeats` timed operations, timed
// with performance.now() until a result has been read back asynchronously
// (the only reads WebGPU has), so the device has finished:
//   forward           one forward pass at batch B without gradients, up to the
//                     per-location predictions (Session.forward; its input is
//                     built from the stored samples inside the timing);
//   plain-step        a training step with the transfer-only rule at batch B;
//   plain-step-2x     the same at batch 2B (the ideal cost of a mixed step);
//   mixed-step        the method's step: transfer batch B and history batch B,
//                     symmetric rule (two backward passes, the mix, Adam);
//   history-gradient  one per-sample gradient of the history update.
// Steps are the page's own training loop (Session.train, one step per epoch):
// a step's time runs from one step's progress callback to the next, so it
// includes the page's yield between steps (a zero-delay timeout), as a user's
// training does.
//
// The synthetic samples are made here, not in Rust: coloured noise with one to
// four boxes of random classes from a seeded generator, like the native
// benchmark's (which is native-only code), fed through the page's own sample
// API (setSample with drawn boxes as verdicts, addHistory), so the samples take
// the path a user's images take.
//
// The result is `globalThis.benchResult` and the JSON in #result-json; the body
// gets data-phase="done" (or "failed", with the error in #errors).
import init, { Session, installPanicHook } from './pkg/veritune.js';
import { requestSubgroups, webgpuProblem } from './webgpu.js';

export const MEASURES = ['forward', 'plain-step', 'plain-step-2x', 'mixed-step', 'history-gradient'];
const TFJS_BACKENDS = ['webgpu', 'webgl', 'cpu'];

const $ = (id) => document.getElementById(id);

/** The page's options from its query string; throws on a bad value. */
export function benchOptions(search) {
  const params = new URLSearchParams(search);
  const integer = (name, fallback, min) => {
    const raw = params.get(name);
    if (raw === null || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) throw new Error(`${name}=${raw} must be a whole number of at least ${min}`);
    return value;
  };
  const backend = params.get('backend') || 'webgpu';
  if (!['webgpu', 'cpu'].includes(backend)) throw new Error(`backend=${backend} must be webgpu or cpu`);
  const measures = (params.get('measures') || MEASURES.join(',')).split(',').filter(Boolean);
  const unknown = measures.filter((m) => !MEASURES.includes(m));
  if (unknown.length) throw new Error(`unknown measures ${unknown.join(', ')}: use ${MEASURES.join(', ')}`);
  const tfjsBackend = params.get('tfjsBackend') || (backend === 'webgpu' ? 'auto' : 'cpu');
  if (!['auto', ...TFJS_BACKENDS].includes(tfjsBackend)) throw new Error(`tfjsBackend=${tfjsBackend} must be auto, ${TFJS_BACKENDS.join(', ')}`);
  return {
    model: params.get('model') || 'assets/model.bpk',
    backend,
    batch: integer('batch', 8, 1),
    warmup: integer('warmup', 1, 0),
    repeats: integer('repeats', 3, 1),
    measures: MEASURES.filter((m) => measures.includes(m)),
    tfjs: params.get('tfjs') || '',
    tfjsScript: params.get('tfjsScript') || 'bench-assets/tf.es2017.min.js',
    tfjsBackend,
  };
}

/** A seeded generator of floats in [0, 1) (mulberry32). */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A `size`-pixel square of coloured noise (RGBA) with one to four boxes of classes below `classes`. */
export function syntheticImage(size, classes, rng) {
  const rgba = new Uint8Array(size * size * 4);
  for (let i = 0; i < rgba.length; i += 4) {
    rgba[i] = rng() * 256;
    rgba[i + 1] = rng() * 256;
    rgba[i + 2] = rng() * 256;
    rgba[i + 3] = 255;
  }
  const boxes = [];
  const count = 1 + Math.floor(rng() * 4);
  for (let k = 0; k < count; k++) {
    const w = (0.1 + 0.4 * rng()) * size;
    const h = (0.1 + 0.4 * rng()) * size;
    const x0 = rng() * (size - w);
    const y0 = rng() * (size - h);
    boxes.push({ bbox: { x0, y0, x1: x0 + w, y1: y0 + h }, class: Math.floor(rng() * classes) });
  }
  return { rgba, boxes };
}

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
/** Wall-clock milliseconds since the epoch, comparable with other processes' clocks. */
const epochMs = () => performance.timeOrigin + performance.now();

function setStatus(text) {
  $('status').textContent = text;
}

async function loadScript(src) {
  await new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} could not be loaded (scripts/bench-browser copies TensorFlow.js there)`));
    document.head.append(script);
  });
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Times `run(k)` `warmup + repeats` times; the timed runs' milliseconds. */
async function timed({ warmup, repeats }, run) {
  const ms = [];
  for (let k = 0; k < warmup + repeats; k++) {
    const start = performance.now();
    await run(k);
    const elapsed = performance.now() - start;
    if (k >= warmup) ms.push(elapsed);
  }
  return ms;
}

/** The veritune measures of `options` on a session of `bytes`. */
async function veritune(options, bytes, wasm) {
  const { batch, warmup, repeats } = options;
  if (options.backend === 'webgpu') requestSubgroups();
  const problem = options.backend === 'webgpu' ? await webgpuProblem() : 'WebGPU was turned off for this run';
  setStatus('Loading the model…');
  const session = await Session.create(bytes, options.backend === 'webgpu' && !problem);
  const size = Number(session.inputSize());
  const classes = session.classNames().length;
  const result = {
    backend: String(session.backend()),
    notice: problem || String(session.notice() || ''),
    inputSize: size,
    classes,
    adapter: '',
    rows: [],
    wasmMemoryBytes: 0,
  };
  if (result.backend === 'webgpu') {
    const info = (await navigator.gpu.requestAdapter())?.info;
    if (info) result.adapter = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  }
  const rng = random(7);
  const transfer = [];
  const present = new Set();
  /** Exactly the transfer samples t0…t(n-1) in the session. */
  const useTransfer = (n) => {
    while (transfer.length < n) transfer.push(syntheticImage(size, classes, rng));
    for (let i = 0; i < transfer.length; i++) {
      const id = `t${i}`;
      if (i < n && !present.has(id)) {
        const { rgba, boxes } = transfer[i];
        session.setSample(id, rgba, size, size, [], { shown: [], drawn: boxes }, 0.5);
        present.add(id);
      } else if (i >= n && present.has(id)) {
        session.removeSample(id);
        present.delete(id);
      }
    }
    return Array.from({ length: n }, (_, i) => `t${i}`);
  };
  let history = 0;
  const useHistory = (n) => {
    for (; history < n; history++) {
      const { rgba, boxes } = syntheticImage(size, classes, rng);
      session.addHistory(`h${history}`, rgba, size, size, boxes);
    }
  };
  /** One step per epoch of the page's training loop, timed between progress callbacks. */
  const steps = async (rule, batchSize) => {
    const ms = [];
    let skipped = 0;
    let last = performance.now();
    // Every epoch runs, the whole model trains (the page's defaults would
    // stop once the verdicts are honored and freeze NanoDet's backbone).
    const options = { epochs: warmup + repeats, rule, batchSize, learningRate: 5e-4, untilHonored: false, freezeBackbone: false };
    await session.train(options, (record, done) => {
      const now = performance.now();
      if (done > warmup) {
        ms.push(now - last);
        if (record.skipped) skipped++;
      }
      last = now;
    });
    return { ms, skipped };
  };
  const run = {
    forward: async () => {
      const ids = useTransfer(batch);
      return { ms: await timed(options, () => session.forward(ids)), images: batch };
    },
    'plain-step': async () => {
      useTransfer(batch);
      return { ...(await steps('transfer-only', batch)), images: batch };
    },
    'plain-step-2x': async () => {
      useTransfer(2 * batch);
      return { ...(await steps('transfer-only', 2 * batch)), images: 2 * batch };
    },
    'mixed-step': async () => {
      useTransfer(batch);
      useHistory(batch);
      return { ...(await steps('symmetric', batch)), images: 2 * batch };
    },
    'history-gradient': async () => {
      const ids = useTransfer(batch);
      return { ms: await timed(options, (k) => session.sampleGradient(ids[k % ids.length])), images: 1 };
    },
  };
  try {
    for (const measure of options.measures) {
      setStatus(`Timing ${measure} on ${result.backend} (batch ${batch}, ${warmup} warm-up, ${repeats} timed)…`);
      const startedAt = epochMs();
      const row = await run[measure]();
      result.rows.push({ measure, batch, skipped: 0, ...row, startedAt, endedAt: epochMs() });
      result.wasmMemoryBytes = Math.max(result.wasmMemoryBytes, wasm.memory.buffer.byteLength);
      renderRows(result.rows);
    }
  } finally {
    session.free();
  }
  return result;
}

/** TensorFlow.js's forward pass of the graph model at `options.tfjs`, at its input shape. */
async function tfjs(options) {
  setStatus('Loading TensorFlow.js…');
  await loadScript(options.tfjsScript);
  const tf = globalThis.tf;
  if (!tf) throw new Error(`${options.tfjsScript} did not define TensorFlow.js (globalThis.tf)`);
  const wanted = options.tfjsBackend === 'auto' ? TFJS_BACKENDS : [options.tfjsBackend];
  let backend = '';
  for (const name of wanted) {
    if (!tf.findBackendFactory(name)) continue;
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        backend = name;
        break;
      }
    } catch {}
  }
  if (!backend) throw new Error(`TensorFlow.js has none of the backends ${wanted.join(', ')} here`);
  setStatus(`Timing TensorFlow.js's forward pass on ${backend}…`);
  const model = await tf.loadGraphModel(options.tfjs);
  const shape = model.inputs[0].shape.map((d) => (d > 0 ? d : 1));
  const rng = random(11);
  const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() * 4 - 2);
  const startedAt = epochMs();
  const ms = await timed(options, async () => {
    // Upload, every output of the graph, and one number read back: as veritune's forward.
    const x = tf.tensor(values, shape, 'float32');
    const sum = tf.tidy(() => {
      const out = model.execute(x);
      return tf.addN((Array.isArray(out) ? out : [out]).map((t) => t.sum()));
    });
    await sum.data();
    tf.dispose([x, sum]);
  });
  const endedAt = epochMs();
  model.dispose();
  return { backend, version: tf.version?.tfjs || '', inputShape: shape, ms, startedAt, endedAt };
}

function renderRows(rows) {
  const body = $('results').querySelector('tbody');
  body.replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement('tr');
      const med = median(row.ms);
      const cells = [
        row.measure,
        row.batch,
        med.toFixed(1),
        `${Math.min(...row.ms).toFixed(1)}–${Math.max(...row.ms).toFixed(1)}`,
        ((row.images * 1000) / med).toFixed(2),
        row.ms.length,
      ];
      tr.append(...cells.map((c) => Object.assign(document.createElement('td'), { textContent: String(c) })));
      return tr;
    }),
  );
  $('results').hidden = false;
}

function fail(message) {
  if (document.body.dataset.phase === 'failed') return;
  const p = document.createElement('p');
  p.textContent = message;
  $('errors').append(p);
  setStatus('Failed.');
  document.body.dataset.phase = 'failed';
}

async function main() {
  const options = benchOptions(location.search);
  globalThis.__veritunePanic = fail;
  setStatus('Loading the WebAssembly module…');
  const wasm = await init();
  installPanicHook();
  const bytes = await fetchBytes(options.model);
  const result = { options, userAgent: navigator.userAgent, ...(await veritune(options, bytes, wasm)), tfjs: null };
  if (options.tfjs) {
    result.tfjs = await tfjs(options);
    const forward = result.rows.find((r) => r.measure === 'forward');
    const [n, , h] = result.tfjs.inputShape;
    // Only the same work compares: the same batch at the same input size.
    if (forward && forward.batch === n && result.inputSize === h) {
      result.tfjs.ratio = median(forward.ms) / median(result.tfjs.ms);
    }
  }
  globalThis.benchResult = result;
  $('result-json').textContent = JSON.stringify(result, null, 1);
  const parts = [`${result.backend}${result.notice ? ` (${result.notice})` : ''}, input ${result.inputSize} px`];
  const mixed = result.rows.find((r) => r.measure === 'mixed-step');
  const plain2x = result.rows.find((r) => r.measure === 'plain-step-2x');
  if (mixed && plain2x) parts.push(`mixed step / plain step at batch ${2 * options.batch}: ${(median(mixed.ms) / median(plain2x.ms)).toFixed(2)}`);
  if (result.tfjs) {
    parts.push(`TensorFlow.js ${result.tfjs.version} on ${result.tfjs.backend}: ${median(result.tfjs.ms).toFixed(1)} ms per forward pass at ${result.tfjs.inputShape.join('×')}`);
    if (result.tfjs.ratio !== undefined) parts.push(`veritune / TensorFlow.js: ${result.tfjs.ratio.toFixed(2)}`);
  }
  $('summary').textContent = parts.join('; ') + '.';
  setStatus('Done.');
  document.body.dataset.phase = 'done';
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
