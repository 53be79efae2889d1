// Faults: the WebGPU device is lost in the middle of training (simulated with
// device.destroy()); the page goes on on the CPU with the verdicts and the
// weights of the last finished run, and trains again.
//   node --test tests/browser/faults.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRAIN_MS,
  WAIT_MS,
  counters,
  launchBrowser,
  pageErrors,
  screenshot,
  startServer,
  trainAndWait,
  waitForReady,
} from './helpers.js';

describe('faults', { timeout: 2 * WAIT_MS + 2 * TRAIN_MS }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser({ webgpu: true });
    // Keeps every device the page is given, so that the test can destroy them.
    await browser.context.addInitScript(() => {
      window.__testDevices = [];
      const proto = globalThis.GPUAdapter?.prototype;
      if (!proto) return;
      const original = proto.requestDevice;
      proto.requestDevice = async function (descriptor) {
        const device = await original.call(this, descriptor);
        window.__testDevices.push(device);
        return device;
      };
    });
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  test('the GPU device lost mid-training: the page goes on on the CPU and trains again', { timeout: WAIT_MS + 2 * TRAIN_MS }, async () => {
    const page = await browser.context.newPage();
    await page.goto(server.url);
    await waitForReady(page);
    assert.equal(await page.evaluate(() => document.body.dataset.backend), 'webgpu');
    await page.waitForFunction(() => !document.getElementById('confirm-all').disabled);
    await page.locator('#confirm-all').click();
    await page.waitForFunction(() => Number(document.getElementById('count-samples').textContent) >= 1);
    const samples = (await counters(page)).samples;

    await page.locator('#epochs').fill('3');
    await page.locator('#train').click();
    await page.waitForFunction(() => /Step [1-9]/.test(document.getElementById('train-status').textContent), null, { timeout: TRAIN_MS });
    assert.ok((await page.evaluate(() => window.__testDevices.length)) > 0, 'the page asked for a device');
    await page.evaluate(() => window.__testDevices.forEach((d) => d.destroy()));

    await page.waitForFunction(() => document.body.dataset.backend === 'cpu', null, { timeout: TRAIN_MS });
    await page.waitForFunction(() => document.body.dataset.phase === 'ready' && !document.body.dataset.predicting, null, { timeout: TRAIN_MS });
    assert.match(await pageErrors(page), /The GPU device was lost \(.+\): veritune goes on on the CPU/);
    assert.match(await page.locator('#train-status').innerText(), /Stopped: the GPU was lost/);
    assert.match(await page.locator('.badge').innerText(), /^CPU/);
    await page.waitForFunction((n) => Number(document.getElementById('count-samples').textContent) === n, samples);
    assert.ok((await counters(page)).history > 0, 'the history samples are back');

    await trainAndWait(page, { epochs: 1 });
    assert.match(await page.locator('#train-status').innerText(), /^Finished: 1 step/);
    await screenshot(page, 'faults-01-gpu-lost.png');
    await page.close();
  });
});
