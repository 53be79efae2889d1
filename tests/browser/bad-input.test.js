// Browser tests of bad input in the page (issue: reliability): huge and
// truncated images, a hostile file name, malformed label files, a box too
// small to draw. Each gets a sentence and changes nothing else. On the CPU
// backend (?backend=cpu). See helpers.js for the environment variables.
//   node --test tests/browser/bad-input.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT,
  TRAIN_MS,
  WAIT_MS,
  appUrl,
  counters,
  dragOnCanvas,
  pageErrors,
  startSuite,
  stopSuite,
  waitForReady,
  waitForSamplesAndHistory,
} from './helpers.js';

const SAMPLE = join(ROOT, 'www/samples/transfer/transfer-00.png');
const png = (name, buffer) => ({ name, mimeType: 'image/png', buffer });

async function dismissErrors(page) {
  while ((await page.locator('#errors .error').count()) > 0) await page.locator('#errors .error button').first().click();
}

describe('bad input in the page', { timeout: 4 * WAIT_MS + 2 * TRAIN_MS }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await startSuite({ webgpu: false }));
    await page.goto(appUrl(server.url, { backend: 'cpu' }));
    await waitForReady(page);
    await waitForSamplesAndHistory(page);
  });

  after(() => stopSuite({ server, browser }));

  test('a huge image is scaled down and said so; a truncated one is refused; a hostile name stays text', { timeout: WAIT_MS + 2 * TRAIN_MS }, async () => {
    // A 3000x1200 PNG, drawn by the page itself.
    const huge = Buffer.from(
      await page.evaluate(async () => {
        const canvas = new OffscreenCanvas(3000, 1200);
        const ctx = canvas.getContext('2d');
        ctx.fillStyle = '#203040';
        ctx.fillRect(0, 0, 3000, 1200);
        const bytes = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
        return btoa(String.fromCharCode(...bytes));
      }),
      'base64',
    );
    const before = await page.locator('#thumbs .thumb').count();
    await page.locator('#file-input').setInputFiles([png('huge.png', huge)]);
    await page.waitForFunction((n) => document.querySelectorAll('#thumbs .thumb').length === n + 1, before);
    await page.waitForFunction(() => !document.body.dataset.predicting, null, { timeout: TRAIN_MS });
    assert.match(await page.locator('#status').innerText(), /1 image is larger than 1024 px and was scaled down to 1024 px on the longer side/);
    const { name, width, height, originalWidth, originalHeight } = await page.evaluate(() => window.veritunePage.labels());
    assert.deepEqual({ name, width, height, originalWidth, originalHeight }, { name: 'huge.png', width: 1024, height: 410, originalWidth: 3000, originalHeight: 1200 });

    // The first half of a real PNG.
    const sample = readFileSync(SAMPLE);
    await page.locator('#file-input').setInputFiles([png('cut.png', sample.subarray(0, sample.length >> 1))]);
    await page.waitForFunction(() => document.getElementById('errors').textContent.includes('cut.png'));
    assert.match(await pageErrors(page), /“cut\.png” could not be decoded as an image/);
    assert.equal(await page.locator('#thumbs .thumb').count(), before + 1);
    await dismissErrors(page);

    // A file name that would be markup if it were ever parsed as HTML.
    const hostile = '<img src=x onerror="window.__pwned=1">.png';
    await page.locator('#file-input').setInputFiles([png(hostile, sample)]);
    await page.waitForFunction((n) => document.querySelectorAll('#thumbs .thumb').length === n + 2, before);
    await page.waitForFunction(() => !document.body.dataset.predicting, null, { timeout: TRAIN_MS });
    assert.equal(await page.locator('#thumbs img, #image-name img, #status img, #errors img').count(), 0);
    assert.ok((await page.locator('#thumbs .thumb').last().innerText()).includes(hostile));
    assert.ok((await page.locator('#image-name').innerText()).endsWith(hostile));
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await pageErrors(page), '');
  });

  test('malformed COCO and VOC files are refused with the file and the fault named; nothing changes', { timeout: WAIT_MS }, async () => {
    const before = await counters(page);
    const text = (name, body) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(body) });
    const cases = [
      [text('broken.json', '{"images": [ {"id": 1, '), /broken\.json/],
      [text('boxes.json', JSON.stringify({ images: [{ id: 1, file_name: 'transfer-00.png', width: 256, height: 256 }], annotations: [{ id: 1, image_id: 1, category_id: 7, bbox: [1, 1, 5, 5] }], categories: [] })), /boxes\.json/],
      [text('transfer-00.xml', '<annotation><filename>transfer-00.png</filename><size><width>256</width>'), /transfer-00\.xml/],
    ];
    for (const [file, named] of cases) {
      await page.locator('#labels-input').setInputFiles([file]);
      await page.waitForFunction((n) => document.getElementById('errors').textContent.includes(n), file.name);
      const errors = await pageErrors(page);
      assert.match(errors, /The labels could not be imported/, errors);
      assert.match(errors, named, errors);
      console.log(`refused ${file.name}: ${errors.split('\n')[0]}`);
      await dismissErrors(page);
    }
    assert.deepEqual(await counters(page), before);
  });

  test('a box too thin to draw is not drawn, and the page says why', { timeout: WAIT_MS + TRAIN_MS }, async () => {
    // The plain dark image: no shown box where the drag starts.
    await page.locator('#thumbs .thumb', { hasText: 'huge.png' }).click();
    await page.waitForFunction(() => document.getElementById('image-name').textContent.endsWith('huge.png'));
    await page.waitForFunction(() => !document.body.dataset.predicting, null, { timeout: TRAIN_MS });
    const drawn = () => page.locator('#box-list li[data-box^="drawn-"]').count();
    const before = await drawn();
    await page.locator('input[name="mode"][value="draw"]').check();
    await dragOnCanvas(page, [0.2, 0.5], [0.8, 0.5]);
    assert.match(await page.locator('#status').innerText(), /No box drawn: a box needs at least 3 pixels on each side/);
    assert.equal(await drawn(), before);
    await page.locator('input[name="mode"][value="edit"]').check();
    assert.equal(await pageErrors(page), '');
  });
});
