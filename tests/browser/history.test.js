// Browser test of the history library after training: a finished run updates
// it (per-sample gradients, progress shown), the project saves its members'
// names, and a resumed project has the same library. On the CPU backend.
//   node --test tests/browser/history.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRAIN_MS,
  WAIT_MS,
  appUrl,
  counters,
  pageErrors,
  reloadAndResume,
  startSuite,
  stopSuite,
  trainAndWait,
  waitForReady,
} from './helpers.js';

const historyIds = (page) => page.evaluate(() => window.veritunePage.historyIds());

describe('the history library after training', { timeout: 3 * WAIT_MS + TRAIN_MS }, () => {
  let server;
  let browser;
  let page;

  before(async () => ({ server, browser, page } = await startSuite({ webgpu: false })));

  after(() => stopSuite({ server, browser }));

  test('one training step updates the library, and a reload restores the same members', { timeout: 3 * WAIT_MS + TRAIN_MS }, async () => {
    await page.goto(appUrl(server.url, { backend: 'cpu' }));
    await waitForReady(page);
    const base = await page.evaluate(() => fetch('samples/history/index.json').then((r) => r.json()));
    await page.waitForFunction((n) => Number(document.getElementById('count-history').textContent) === n, base.length);
    const before = await historyIds(page);
    assert.deepEqual(before, base.map((item) => `history:${item.file}`), 'the sample history, in its order');

    // One reviewed image, one step (batch size 8 > 1 sample).
    await page.locator('#confirm-all').click();
    await page.waitForFunction(() => document.getElementById('count-samples').textContent === '1');
    const imageId = await page.evaluate(() => document.querySelector('#thumbs .thumb').dataset.id);
    await trainAndWait(page, { epochs: 1 });
    const status = await page.locator('#train-status').innerText();
    // Below its capacity (256) the library takes every newcomer and keeps every member.
    assert.match(status, /^Finished: 1 step in .* History library: 1 of 1 reviewed image admitted, 0 evicted, (\d+) samples\./, status);
    const after = await historyIds(page);
    assert.deepEqual(after, [...before, imageId]);
    assert.equal((await counters(page)).history, before.length + 1);
    assert.equal(await page.evaluate(() => window.veritunePage.saved()), 'saved');

    await reloadAndResume(page, 'Project 1');
    await page.waitForFunction((n) => Number(document.getElementById('count-history').textContent) === n, after.length);
    assert.deepEqual(await historyIds(page), after, 'the same members, in the same order');
    assert.equal(await pageErrors(page), '');
    assert.deepEqual(browser.consoleErrors, []);
  });
});
