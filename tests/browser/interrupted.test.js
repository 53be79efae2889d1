// Browser test of a tab that goes away during training: every completed step
// is saved, so the project on reload is the state after the last completed
// step (its weights and that step's records), never a mixture. The page is
// frozen right after a step is saved (nothing more can be written) and then
// closed. On the CPU backend.
//   node --test tests/browser/interrupted.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TRAIN_MS,
  WAIT_MS,
  appUrl,
  pageErrors,
  startSuite,
  stopSuite,
  trainAndWait,
  waitForReady,
  waitForSamplesAndHistory,
} from './helpers.js';

/** The test freezes the page once a step from this one on is saved (saves of quick steps may be merged). */
const FREEZE_FROM = 2;

describe('a tab closed during training', { timeout: 3 * WAIT_MS + TRAIN_MS }, () => {
  let server;
  let browser;

  before(async () => ({ server, browser } = await startSuite({ webgpu: false, page: false })));

  after(() => stopSuite({ server, browser }));

  test('resumes from the last completed step', { timeout: 3 * WAIT_MS + TRAIN_MS }, async () => {
    const page = await browser.context.newPage();
    await page.goto(appUrl(server.url, { backend: 'cpu', project: 'new' }));
    await waitForReady(page);
    await waitForSamplesAndHistory(page);
    // Two reviewed images at batch size 1: two steps an epoch, forty in all.
    await page.locator('#confirm-all').click();
    await page.locator('#next-image').click();
    await page.waitForFunction(() => document.getElementById('image-name').textContent.startsWith('2 /'));
    await page.waitForFunction(() => !document.getElementById('confirm-all').disabled);
    await page.locator('#confirm-all').click();
    await page.waitForFunction(() => document.getElementById('count-samples').textContent === '2');
    await page.locator('details.advanced summary', { hasText: 'Advanced' }).click();
    await page.locator('#batch-size').fill('1');
    await page.locator('#update-history').uncheck();
    await page.locator('#epochs').fill('20');
    await page.locator('#until-honored').uncheck();

    let saved;
    const frozen = new Promise((resolve) => (saved = resolve));
    await page.exposeFunction('checkpointSaved', (step) => saved(step));
    await page.evaluate((at) => {
      document.addEventListener('veritune:checkpoint', (ev) => {
        if (ev.detail.step < at) return;
        window.checkpointSaved(ev.detail.step);
        // The tab stops here: no later step can run or be written.
        for (;;);
      });
    }, FREEZE_FROM);
    await page.locator('#train').click();
    const step = await frozen;
    assert.ok(step >= FREEZE_FROM && step < 40, `frozen after step ${step}`);
    await page.close({ runBeforeUnload: false });

    const again = await browser.context.newPage();
    await again.goto(appUrl(server.url, { backend: 'cpu' }));
    await again.waitForFunction(() => document.body.dataset.phase === 'choosing');
    await again.locator('#projects-resume').click();
    await waitForReady(again);
    assert.equal(await again.evaluate(() => document.body.dataset.model), 'project', 'the saved weights are loaded');
    assert.match(
      await again.locator('#train-status').innerText(),
      new RegExp(`^Run 1 stopped after step ${step} of 40 \\(the page was closed or lost its GPU\\); the weights after that step are kept\\.`),
    );
    assert.equal(await pageErrors(again), '');
    // Training goes on from there.
    await trainAndWait(again, { epochs: 1 });
    assert.match(await again.locator('#train-status').innerText(), /^Finished: 2 steps/);
    assert.equal(await pageErrors(again), '');
  });
});
