// Privacy: a whole session (open the user's own image, verdicts, train,
// export, reload) sends nothing anywhere but 127.0.0.1, sends no image data
// even there, and works with the network off once the page has loaded.
//   node --test tests/browser/privacy.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT,
  TRAIN_MS,
  WAIT_MS,
  appUrl,
  assertStaysLocal,
  counters,
  pageErrors,
  startSuite,
  stopSuite,
  trainAndWait,
  waitForReady,
  waitForSamplesAndHistory,
} from './helpers.js';

const PRIVATE = 'private-holiday-photo';

describe('privacy', { timeout: 3 * WAIT_MS + TRAIN_MS }, () => {
  let server;
  let browser;

  before(async () => ({ server, browser } = await startSuite({ webgpu: false, page: false })));

  after(() => stopSuite({ server, browser }));

  test('a whole session offline after loading: no request leaves 127.0.0.1, none carries image data', { timeout: 2 * WAIT_MS + TRAIN_MS }, async () => {
    const page = await browser.context.newPage();
    await page.goto(appUrl(server.url, { backend: 'cpu' }));
    await waitForReady(page);
    await waitForSamplesAndHistory(page);

    // The network goes away; the user's own photo is opened, judged, trained on, exported.
    await browser.context.setOffline(true);
    const photo = readFileSync(join(ROOT, 'www/samples/transfer/transfer-03.png'));
    await page.locator('#file-input').setInputFiles([{ name: `${PRIVATE}.png`, mimeType: 'image/png', buffer: photo }]);
    await page.waitForFunction((name) => document.getElementById('image-name').textContent.endsWith(name), `${PRIVATE}.png`);
    await page.waitForFunction(() => !document.getElementById('confirm-all').disabled);
    await page.locator('#confirm-all').click();
    await page.waitForFunction(() => Number(document.getElementById('count-samples').textContent) >= 1);
    await trainAndWait(page, { epochs: 1 });
    const downloads = [];
    page.on('download', (d) => downloads.push(d));
    await page.locator('#export').click();
    const deadline = Date.now() + WAIT_MS;
    while (downloads.length < 2 && Date.now() < deadline) await page.waitForTimeout(100);
    assert.equal(downloads.length, 2, `the export works offline (errors: ${await pageErrors(page)})`);
    assert.equal(await pageErrors(page), '', 'nothing failed while offline');
    assert.equal(await page.evaluate(() => window.veritunePage.saved()), 'saved');

    // Back online, a reload resumes the project with the photo from the browser's own storage.
    await browser.context.setOffline(false);
    const seen = await counters(page);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.phase === 'choosing');
    await page.locator('#projects-resume').click();
    await waitForReady(page);
    await page.waitForFunction((n) => Number(document.getElementById('count-samples').textContent) === n, seen.samples);
    assert.ok((await page.locator('#thumbs .thumb').allInnerTexts()).some((t) => t.includes(`${PRIVATE}.png`)));

    assertStaysLocal(browser, server, [PRIVATE]);
    assert.deepEqual(browser.consoleErrors, []);
    await page.close();
  });
});
