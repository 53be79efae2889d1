// The speed benchmark's page (www/bench.html), at the smallest settings on the
// CPU fallback: every measure reports a time, and a session holds NanoDet-g
// (forward pass only) next to TensorFlow.js's forward pass of the same graph.
// The full benchmark is scripts/bench-browser.
//   node --test tests/browser/bench.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, VERITUNE_BIN, WAIT_MS, appUrl, pageErrors, startSuite, stopSuite } from './helpers.js';

const MEASURES = ['forward', 'plain-step', 'plain-step-2x', 'mixed-step', 'history-gradient'];

/** Loads bench.html with `query` and returns its result; fails with the page's errors. */
async function bench(browser, server, query) {
  const page = await browser.context.newPage();
  try {
    // The bench page's `model` is a weights file; without one it times the digits detector.
    await page.goto(appUrl(new URL('bench.html', server.url).toString(), { model: null, ...query }));
    await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.phase), null, { timeout: WAIT_MS, polling: 250 });
    const errors = await pageErrors(page);
    assert.equal(await page.evaluate(() => document.body.dataset.phase), 'done', `the page failed: ${errors}`);
    assert.equal(errors, '');
    return await page.evaluate(() => globalThis.benchResult);
  } finally {
    await page.close();
  }
}

function assertTimes(ms, what) {
  assert.ok(ms.length > 0 && ms.every((t) => Number.isFinite(t) && t > 0), `${what}: ${JSON.stringify(ms)}`);
}

describe('speed benchmark page', { timeout: 3 * WAIT_MS }, () => {
  let server;
  let browser;

  before(async () => ({ server, browser } = await startSuite({ webgpu: false, page: false })));

  after(() => stopSuite({ server, browser }));

  test('every measure of the default model reports a time on the CPU fallback', { timeout: WAIT_MS }, async () => {
    const result = await bench(browser, server, { backend: 'cpu', batch: 1, warmup: 0, repeats: 1 });
    assert.equal(result.backend, 'cpu');
    assert.deepEqual(result.rows.map((r) => r.measure), MEASURES);
    for (const row of result.rows) {
      assert.equal(row.ms.length, 1, row.measure);
      assertTimes(row.ms, row.measure);
      assert.equal(row.skipped, 0, `${row.measure}: a step was skipped`);
      assert.ok(row.startedAt <= row.endedAt, row.measure);
    }
    assert.deepEqual(result.rows.map((r) => r.images), [1, 1, 2, 2, 1]);
    assert.ok(result.wasmMemoryBytes > 0);
    assert.equal(result.tfjs, null);
    assert.deepEqual(browser.consoleErrors, []);
  });

  test('a session holds NanoDet-g, and TensorFlow.js runs the same graph in the page', { timeout: WAIT_MS }, async () => {
    assert.ok(existsSync(join(ROOT, 'data/nanodet/nanodet.json')), 'data/nanodet/ is missing: run scripts/fetch-data');
    // What scripts/bench-browser puts into www/bench-assets/ (gitignored), at 320 px only.
    const assets = join(ROOT, 'www/bench-assets');
    mkdirSync(join(assets, 'nanodet'), { recursive: true });
    execFileSync(VERITUNE_BIN, ['import', 'nanodet', '--json', 'data/nanodet/nanodet.json', '--input-size', '320', '--output', join(assets, 'nanodet-320.bpk')], { cwd: ROOT, stdio: 'pipe' });
    for (const file of ['nanodet.json', 'nanodet.bin']) copyFileSync(join(ROOT, 'data/nanodet', file), join(assets, 'nanodet', file));
    copyFileSync(join(ROOT, 'node_modules/@tensorflow/tfjs/dist/tf.es2017.min.js'), join(assets, 'tf.es2017.min.js'));

    const result = await bench(browser, server, {
      model: 'bench-assets/nanodet-320.bpk',
      backend: 'cpu',
      batch: 1,
      warmup: 0,
      repeats: 1,
      measures: 'forward',
      tfjs: 'bench-assets/nanodet/nanodet.json',
    });
    assert.equal(result.inputSize, 320);
    assert.equal(result.classes, 80);
    assert.deepEqual(result.rows.map((r) => r.measure), ['forward']);
    assertTimes(result.rows[0].ms, 'NanoDet forward');
    assert.equal(result.tfjs.backend, 'cpu');
    assert.deepEqual(result.tfjs.inputShape, [1, 3, 416, 416]);
    assertTimes(result.tfjs.ms, 'TensorFlow.js forward');
    // 320 px against the graph's 416 px is not the same work: no ratio.
    assert.equal(result.tfjs.ratio, undefined);
  });
});
