// Browser tests of projects (saved in the browser, export/import), undo and
// redo, the keyboard, zoom and pan; against the real wasm module on the CPU
// backend (?backend=cpu). See helpers.js for the environment variables.
//   node --test tests/browser/projects.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DOWNLOADS,
  ROOT,
  TRAIN_MS,
  VERITUNE_BIN,
  WAIT_MS,
  appUrl,
  assertStaysLocal,
  counters,
  dragOnCanvas,
  ensureShownBoxes,
  launchBrowser,
  pageErrors,
  reloadAndResume,
  screenshot,
  startSuite,
  stopSuite,
  trainAndWait,
  waitForReady,
} from './helpers.js';

const CPU = { backend: 'cpu' };
const shown = (page) => page.locator('#box-list li[data-box^="shown-"]');
/** "shown-0:confirmed", "drawn-0:drawn", … for the current image. */
const verdictList = (page) =>
  page.locator('#box-list li[data-box]').evaluateAll((ls) => ls.map((l) => `${l.dataset.box}:${l.dataset.judgement}`));
const thumbStates = (page) => page.locator('#thumbs .thumb .thumb-state').allInnerTexts();
const saved = (page) => page.evaluate(() => window.veritunePage.saved());
const selected = (page) => page.evaluate(() => window.veritunePage.selectedBox());
const imageNumber = (page) => page.evaluate(() => Number(document.getElementById('image-name').textContent.split(' /')[0]));

async function waitImage(page, n) {
  await page.waitForFunction((k) => document.getElementById('image-name').textContent.startsWith(`${k} /`), n);
  await page.waitForFunction(() => !document.getElementById('confirm-all').disabled);
}

describe('projects, undo, keyboard', { timeout: 6 * WAIT_MS + 2 * TRAIN_MS }, () => {
  let server;
  let browser;
  let page;
  /** What the first test labelled, to find again after reloads and imports. */
  let labelled;

  before(async () => ({ server, browser, page } = await startSuite({ webgpu: false })));

  after(() => stopSuite({ server, browser }));

  test('label images, reload: verdicts, drawn boxes, counters and settings are back', { timeout: 3 * WAIT_MS }, async () => {
    await page.goto(appUrl(server.url, CPU));
    await waitForReady(page);
    assert.equal(await page.locator('#project-name').innerText(), 'Project 1');

    // Image 1: confirm, reject, draw a missed box, confirm the rest.
    assert.ok((await ensureShownBoxes(page, 2)) >= 2, 'two shown boxes on the first sample');
    await shown(page).nth(0).locator('[data-action="confirm"]').click();
    await shown(page).nth(1).locator('[data-action="reject"]').click();
    await page.locator('input[name="mode"][value="draw"]').check();
    await dragOnCanvas(page, [0.42, 0.42], [0.58, 0.6]);
    await page.locator('#box-list li[data-box="drawn-0"]').waitFor();
    await page.locator('input[name="mode"][value="edit"]').check();
    await page.locator('#confirm-all').click();
    // Image 2: a settings change and Confirm all.
    await page.locator('#rule').selectOption('pcgrad');
    await page.locator('#epochs').fill('3');
    await page.locator('#epochs').dispatchEvent('change');
    await page.locator('#next-image').click();
    await waitImage(page, 2);
    await page.locator('#confirm-all').click();
    await page.waitForFunction(() => document.getElementById('count-samples').textContent === '2');
    // The thumbnails' states, once the prediction pass (in the engine's worker, beside the user) is over.
    await page.waitForFunction(() => !document.body.dataset.predicting);

    const before = {
      counters: await counters(page),
      threshold: await page.locator('#threshold').inputValue(),
      image2: await verdictList(page),
      thumbs: await thumbStates(page),
    };
    await page.locator('#prev-image').click();
    await waitImage(page, 1);
    before.image1 = await verdictList(page);
    const drawnBox = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    assert.ok(before.image1.includes('shown-0:confirmed') && before.image1.includes('shown-1:rejected') && before.image1.includes('drawn-0:drawn'), before.image1.join());
    assert.equal(before.counters.missed, 1);
    assert.equal(before.counters.false, 1);
    assert.equal(await saved(page), 'saved');
    assert.equal(await page.locator('#save-state').innerText(), 'Saved');

    await reloadAndResume(page, 'Project 1');
    assert.ok(!(await page.locator('#projects-dialog').isVisible()), 'the dialog is closed');
    await page.waitForFunction(() => document.getElementById('count-samples').textContent === '2');
    assert.equal(await imageNumber(page), 1, 'the image that was open');
    assert.deepEqual(await verdictList(page), before.image1);
    const drawnAfter = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    for (const k of ['x', 'y', 'w', 'h']) assert.ok(Math.abs(drawnAfter[k] - drawnBox[k]) < 0.5, `drawn box ${k}`);
    const c = await counters(page);
    assert.deepEqual({ ...c, history: 0 }, { ...before.counters, history: 0 });
    assert.equal(await page.locator('#threshold').inputValue(), before.threshold);
    assert.equal(await page.locator('#rule').inputValue(), 'pcgrad');
    assert.equal(await page.locator('#epochs').inputValue(), '3');
    await page.waitForFunction(() => !document.body.dataset.predicting);
    assert.deepEqual(await thumbStates(page), before.thumbs);
    assert.match(await page.locator('#status').innerText(), /Resumed “Project 1”/);
    // Not offered as new: the same model predicts the same boxes.
    assert.ok(await page.locator('#rereview').isHidden());
    await page.locator('#next-image').click();
    await waitImage(page, 2);
    assert.deepEqual(await verdictList(page), before.image2);
    labelled = { image1: before.image1, counters: c };
    await screenshot(page, 'projects-01-resumed.png');
    assert.equal(await pageErrors(page), '');
  });

  test('undo and redo every verdict and box edit, across images', { timeout: 2 * WAIT_MS }, async () => {
    await page.locator('#thumbs .thumb').nth(2).click();
    await waitImage(page, 3);
    assert.ok((await ensureShownBoxes(page, 1)) >= 1);
    assert.ok(await page.locator('#undo').isDisabled(), 'nothing to undo after a reload');
    const first = shown(page).nth(0);
    await first.locator('[data-action="confirm"]').click();
    assert.equal(await first.getAttribute('data-judgement'), 'confirmed');
    await page.locator('#image-canvas').focus();
    await page.keyboard.press('Control+z');
    assert.equal(await first.getAttribute('data-judgement'), 'unjudged');
    await page.keyboard.press('Control+Shift+Z');
    assert.equal(await first.getAttribute('data-judgement'), 'confirmed');
    await page.keyboard.press('Control+z');
    assert.equal(await first.getAttribute('data-judgement'), 'unjudged');
    await page.keyboard.press('Control+y');
    assert.equal(await first.getAttribute('data-judgement'), 'confirmed');

    // A drawn box, then its move with the mouse: two steps back, two forward (buttons).
    await page.locator('input[name="mode"][value="draw"]').check();
    await dragOnCanvas(page, [0.3, 0.3], [0.45, 0.5]);
    await page.locator('input[name="mode"][value="edit"]').check();
    const drawn = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    const canvas = await page.locator('#image-canvas').boundingBox();
    await page.mouse.move(canvas.x + drawn.x + drawn.w / 2, canvas.y + drawn.y + drawn.h / 2);
    await page.mouse.down();
    for (let k = 1; k <= 5; k++) await page.mouse.move(canvas.x + drawn.x + drawn.w / 2 + 4 * k, canvas.y + drawn.y + drawn.h / 2);
    await page.mouse.up();
    const moved = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    assert.ok(moved.x > drawn.x + 10, 'moved right');
    await page.locator('#undo').click();
    const back = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    assert.ok(Math.abs(back.x - drawn.x) < 0.01, 'the move is undone');
    await page.locator('#undo').click();
    assert.equal(await page.locator('#box-list li[data-box="drawn-0"]').count(), 0, 'the drawn box is undone');
    await page.locator('#redo').click();
    await page.locator('#redo').click();
    const again = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    assert.ok(Math.abs(again.x - moved.x) < 0.01, 'redo puts the moved box back');
    assert.ok(await page.locator('#redo').isDisabled());

    // Undo goes back to the image where the change was made.
    await page.keyboard.press('Escape');
    await page.keyboard.press('ArrowRight');
    await waitImage(page, 4);
    await page.keyboard.press('Control+z');
    await waitImage(page, 3);
    assert.equal(await page.locator('#box-list li[data-box="drawn-0"]').count(), 1, 'the move is undone, the box stays');
    await page.keyboard.press('Control+z');
    assert.equal(await page.locator('#box-list li[data-box="drawn-0"]').count(), 0);
    // An undone change is saved too.
    assert.equal(await saved(page), 'saved');
    assert.equal(await pageErrors(page), '');
  });

  test('keyboard only: select, confirm, reject, class, nudge, add and delete a box, confirm all; zoom and pan', { timeout: 2 * WAIT_MS }, async () => {
    await page.locator('#image-canvas').focus();
    await page.keyboard.press('Escape');
    await page.keyboard.press('Home');
    await waitImage(page, 1);
    for (let k = 0; k < 4; k++) await page.keyboard.press('PageDown');
    await waitImage(page, 5);
    const n = await ensureShownBoxes(page, 2);
    assert.ok(n >= 2, 'two shown boxes');
    await page.locator('#image-canvas').focus();
    const samples = (await counters(page)).samples;

    // N selects the first box; C confirms it and moves on; X rejects the next.
    await page.keyboard.press('n');
    assert.equal((await selected(page)).kind, 'shown');
    assert.equal(await page.locator('#box-list li.selected').getAttribute('data-box'), 'shown-0');
    await page.keyboard.press('c');
    assert.equal(await shown(page).nth(0).getAttribute('data-judgement'), 'confirmed');
    await page.keyboard.press('x');
    assert.equal(await shown(page).nth(1).getAttribute('data-judgement'), 'rejected');

    // Back to the first box: a number key changes its class (a correction).
    await page.keyboard.press('Escape');
    await page.keyboard.press('n');
    const sel = await selected(page);
    const names = await page.locator('#draw-class option').allInnerTexts();
    // The key of a class named by a digit, else the n-th class's.
    let target = names.findIndex((name, c) => c !== sel.class && /^[0-9]$/.test(name));
    let key = names[target];
    if (target < 0) {
      target = sel.class === 0 ? 1 : 0;
      key = String(target + 1);
    }
    await page.keyboard.press(key);
    assert.equal(await shown(page).nth(0).getAttribute('data-judgement'), 'corrected');
    assert.equal(await shown(page).nth(0).locator('select[data-action="class"]').inputValue(), String(target));

    // Arrows move the selected box (Shift: 10 pixels), Alt+arrows resize it.
    const b0 = (await selected(page)).bbox;
    const { width, height } = sel;
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Alt+ArrowRight');
    const b1 = (await selected(page)).bbox;
    const dx = Math.min(1, width - b0.x1);
    const dy = Math.min(10, height - b0.y1);
    assert.ok(Math.abs(b1.x0 - (b0.x0 + dx)) < 1e-6, `x0 ${b0.x0} → ${b1.x0}`);
    assert.ok(Math.abs(b1.y0 - (b0.y0 + dy)) < 1e-6, `y0 ${b0.y0} → ${b1.y0}`);
    assert.ok(Math.abs(b1.x1 - Math.min(width, b0.x1 + dx + 1)) < 1e-6, `x1 ${b0.x1} → ${b1.x1}`);
    assert.ok(Math.abs(b1.y1 - b1.y0 - (b0.y1 - b0.y0)) < 1e-6, 'height kept');
    assert.equal(await imageNumber(page), 5, 'arrows with a box selected do not change image');

    // B adds a box in the middle of the view; Delete removes it; B again and keep it.
    await page.keyboard.press('b');
    await page.locator('#box-list li[data-box="drawn-0"]').waitFor();
    assert.equal((await selected(page)).kind, 'drawn');
    await page.keyboard.press('Delete');
    await page.locator('#box-list li[data-box="drawn-0"]').waitFor({ state: 'detached' });
    await page.keyboard.press('b');
    await page.keyboard.press('Shift+ArrowLeft');
    await page.locator('#box-list li[data-box="drawn-0"]').waitFor();

    // A confirms the rest: the image is reviewed.
    await page.keyboard.press('a');
    await page.waitForFunction(() => /^reviewed: missed \+ false/.test(document.getElementById('image-state').textContent));
    await page.waitForFunction((s) => Number(document.getElementById('count-samples').textContent) === s + 1, samples);
    const verdicts = await verdictList(page);
    assert.ok(!verdicts.some((v) => v.endsWith(':unjudged')), verdicts.join());

    // D switches to drawing and back.
    await page.keyboard.press('d');
    assert.ok(await page.locator('input[name="mode"][value="draw"]').isChecked());
    await page.keyboard.press('d');
    assert.ok(await page.locator('input[name="mode"][value="edit"]').isChecked());

    // Zoom with + and the wheel, boxes stay editable when zoomed: drag the drawn box.
    await page.keyboard.press('Escape');
    await page.keyboard.press('+');
    assert.ok(Math.abs((await page.evaluate(() => window.veritunePage.zoom())).k - 1.5) < 1e-9);
    assert.equal(await page.locator('#zoom-value').innerText(), '150 %');
    await page.keyboard.press('f');
    const canvas = await page.locator('#image-canvas').boundingBox();
    await page.mouse.move(canvas.x + canvas.width / 2, canvas.y + canvas.height / 2);
    await page.mouse.wheel(0, -400);
    await page.waitForFunction(() => window.veritunePage.zoom().k > 1.5);
    const z = await page.evaluate(() => window.veritunePage.zoom());
    const boxes = await page.evaluate(() => window.veritunePage.boxesOnScreen());
    const box = boxes.find((b) => b.key === 'drawn-0');
    assert.equal(await page.evaluate(() => window.veritunePage.selectedBox()), null);
    // A point of the drawn box inside no other box.
    const inside = (b, x, y) => x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h;
    let px = box.x + box.w / 2;
    let py = box.y + box.h / 2;
    search: for (let i = 1; i < 8; i++) {
      for (let j = 1; j < 8; j++) {
        const x = box.x + (box.w * i) / 8;
        const y = box.y + (box.h * j) / 8;
        if (!boxes.some((b) => b.key !== 'drawn-0' && inside(b, x, y))) {
          px = x;
          py = y;
          break search;
        }
      }
    }
    const cx = canvas.x + px;
    const cy = canvas.y + py;
    assert.ok(cx > canvas.x && cx < canvas.x + canvas.width && cy > canvas.y && cy < canvas.y + canvas.height, 'the drawn box is in view');
    await page.mouse.move(cx, cy);
    await page.mouse.down();
    for (let k = 1; k <= 5; k++) await page.mouse.move(cx + 6 * k, cy);
    await page.mouse.up();
    const movedBy = await page.evaluate(() => window.veritunePage.selectedBox());
    const screenAfter = await page.evaluate(() => window.veritunePage.boxesOnScreen().find((b) => b.key === 'drawn-0'));
    assert.ok(Math.abs(screenAfter.x - box.x - 30) < 1.5, `moved 30 screen pixels at zoom ${z.k.toFixed(2)} (${screenAfter.x - box.x})`);
    assert.equal(movedBy.kind, 'drawn');

    // Pan: Space + drag moves the view, not a box.
    const before = await page.evaluate(() => window.veritunePage.zoom());
    await page.keyboard.press('Escape');
    await page.mouse.move(canvas.x + 20, canvas.y + 20);
    await page.keyboard.down(' ');
    await page.mouse.down();
    for (let k = 1; k <= 5; k++) await page.mouse.move(canvas.x + 20 + 8 * k, canvas.y + 20 + 6 * k);
    await page.mouse.up();
    await page.keyboard.up(' ');
    const panned = await page.evaluate(() => window.veritunePage.zoom());
    assert.ok(panned.cx < before.cx || panned.cy < before.cy, `the view moved (${before.cx},${before.cy} → ${panned.cx},${panned.cy})`);
    assert.equal(await page.evaluate(() => window.veritunePage.selectedBox()), null);
    await page.keyboard.press('f');

    // ? lists every shortcut.
    await page.keyboard.press('?');
    const dialog = page.locator('#shortcuts-dialog');
    await dialog.waitFor();
    const text = await dialog.innerText();
    for (const k of ['Ctrl+Z', 'Ctrl+Shift+Z', 'Ctrl+Y', 'Page Down', 'Delete', 'Alt+arrows', 'Space+drag']) assert.ok(text.includes(k), k);
    await screenshot(page, 'projects-02-shortcuts.png');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await saved(page), 'saved');
    assert.equal(await pageErrors(page), '');
  });

  test('a full storage is said in a sentence and loses nothing in the tab; saving resumes', { timeout: 2 * WAIT_MS }, async () => {
    const p2 = await browser.context.newPage();
    try {
      // Every IndexedDB write fails as on a full disk while window.__quotaFull is set.
      await p2.addInitScript(() => {
        const put = IDBObjectStore.prototype.put;
        IDBObjectStore.prototype.put = function (...args) {
          if (globalThis.__quotaFull) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
          return put.apply(this, args);
        };
      });
      await p2.goto(appUrl(server.url, { ...CPU, project: 'new' }));
      await waitForReady(p2);
      assert.equal(await p2.locator('#project-name').innerText(), 'Project 2');
      assert.equal(await saved(p2), 'saved');
      await p2.evaluate(() => (globalThis.__quotaFull = true));
      await p2.waitForFunction(() => document.querySelectorAll('#thumbs .thumb').length === 12);
      // The prediction pass reports in the status line: let it end first.
      await p2.waitForFunction(() => !document.body.dataset.predicting);
      await p2.locator('#confirm-all').click();
      await p2.waitForFunction(() => document.body.dataset.save === 'failed');
      assert.match(await pageErrors(p2), /storage for this page is full.*kept in this tab but not saved/s);
      assert.equal(await p2.locator('#save-state').innerText(), 'Not saved: retry');
      await p2.waitForFunction(() => document.getElementById('count-samples').textContent === '1');
      assert.match(await p2.locator('#image-state').innerText(), /^reviewed/);
      await p2.evaluate(() => (globalThis.__quotaFull = false));
      await p2.locator('#save-state').click();
      await p2.waitForFunction(() => document.body.dataset.save === 'saved');
      assert.match(await p2.locator('#status').innerText(), /Saving works again/);
      await reloadAndResume(p2, 'Project 2');
      await p2.waitForFunction(() => document.getElementById('count-samples').textContent === '1');
      assert.equal(await p2.locator('#thumbs .thumb').count(), 12);

      // The Projects dialog: the other tab's project is marked and cannot be deleted; rename this one.
      await p2.locator('#projects-button').click();
      const list = p2.locator('#projects-list');
      await list.locator('li').nth(1).waitFor();
      const other = list.locator('li', { hasText: 'Project 1' });
      assert.match(await other.innerText(), /open in another tab/);
      assert.ok(await other.getByRole('button', { name: 'Delete “Project 1”' }).isDisabled());
      assert.match(await list.locator('li', { hasText: 'Project 2' }).innerText(), /open here[\s\S]*12 images · 1 reviewed · not trained/);
      assert.match(await p2.locator('#projects-storage').innerText(), /^Storage used by this page in this browser: .+ of .+\.$/);
      await p2.getByRole('button', { name: 'Rename “Project 2”' }).click();
      await p2.getByRole('textbox', { name: 'New name for “Project 2”' }).fill('Quota test');
      await p2.keyboard.press('Enter');
      await list.locator('li', { hasText: 'Quota test' }).waitFor();
      await p2.locator('#projects-close').click();
      assert.equal(await p2.locator('#project-name').innerText(), 'Quota test');
      assert.equal(await saved(p2), 'saved');
      assert.match(await p2.locator('#image-state').innerText(), /^reviewed/);
    } finally {
      await p2.close();
    }
  });

  test('export the project as one file, import it in a fresh browser: verdicts are back; a newer format is refused', { timeout: 3 * WAIT_MS }, async () => {
    mkdirSync(DOWNLOADS, { recursive: true });
    await page.locator('#thumbs .thumb').first().click();
    await waitImage(page, 1);
    const exported = {
      counters: await counters(page),
      image1: await verdictList(page),
      thumbs: await thumbStates(page),
    };
    assert.deepEqual(exported.image1, labelled.image1);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export-project').click()]);
    assert.equal(download.suggestedFilename(), 'Project 1.veritune');
    const file = join(DOWNLOADS, 'projects-test.veritune');
    await download.saveAs(file);
    const bytes = readFileSync(file);
    assert.equal(bytes.subarray(0, 16).toString('latin1'), 'VERITUNE-PROJECT');
    const length = bytes.readUInt32LE(16);
    const manifest = JSON.parse(bytes.subarray(20, 20 + length).toString('utf8'));
    assert.equal(manifest.format, 'veritune-project');
    assert.equal(manifest.version, 1);
    assert.equal(manifest.images.length, 12);
    assert.equal(manifest.weights, null, 'not trained: no weights in the file');
    const im = manifest.images[0];
    assert.equal(bytes.subarray(20 + length + im.blob.offset + 1, 20 + length + im.blob.offset + 4).toString('latin1'), 'PNG');
    assert.ok(im.judgements.length >= 2 && im.drawn.length === 1);

    // A file from a newer veritune, refused with a sentence.
    const newer = Buffer.from(bytes);
    const m2 = JSON.stringify({ ...manifest, version: 2 });
    const head = Buffer.alloc(20);
    head.write('VERITUNE-PROJECT', 0, 'latin1');
    head.writeUInt32LE(Buffer.byteLength(m2), 16);
    const newerFile = join(DOWNLOADS, 'projects-test-newer.veritune');
    writeFileSync(newerFile, Buffer.concat([head, Buffer.from(m2), newer.subarray(20 + length)]));

    const fresh = await launchBrowser({ webgpu: false });
    try {
      const p = await fresh.context.newPage();
      await p.goto(appUrl(server.url, CPU));
      await waitForReady(p);
      assert.equal((await counters(p)).samples, 0);
      await p.locator('#projects-button').click();
      await p.locator('#projects-dialog').waitFor();
      await p.locator('#projects-import').setInputFiles(newerFile);
      await p.locator('#projects-error').waitFor();
      assert.match(
        await p.locator('#projects-error').innerText(),
        /^“projects-test-newer\.veritune” was saved by a newer veritune \(project format 2\); this page reads format 1 and older, so it cannot open it/,
      );
      // The page reloads into the imported project.
      await p.locator('#projects-import').setInputFiles(file);
      await p.locator('#project-name').filter({ hasText: 'Project 1 (imported)' }).waitFor();
      await waitForReady(p);
      await p.waitForFunction((n) => document.getElementById('count-samples').textContent === String(n), exported.counters.samples);
      assert.equal(await imageNumber(p), 1);
      assert.deepEqual(await verdictList(p), exported.image1);
      const c = await counters(p);
      assert.deepEqual({ ...c, history: 0 }, { ...exported.counters, history: 0 });
      assert.deepEqual(await thumbStates(p), exported.thumbs);
      await screenshot(p, 'projects-03-imported.png');

      // Trained weights are saved and a resumed project starts from them:
      // an image opened after the reload gets the trained model's boxes.
      await trainAndWait(p, { epochs: 1 });
      assert.match(await p.locator('#train-status').innerText(), /^Finished: \d+ steps? in/);
      const sample = join(ROOT, 'www/samples/transfer/transfer-00.png');
      await p.locator('#file-input').setInputFiles(sample);
      await waitImage(p, 13);
      const trained = await p.evaluate(() => window.veritunePage.candidates());
      await p.locator('#thumbs .thumb').first().click();
      await waitImage(p, 1);
      const defaultModel = await p.evaluate(() => window.veritunePage.candidates());
      assert.notDeepEqual(trained, defaultModel, 'training changed the predictions on transfer-00.png');
      await p.locator('input[name="view"][value="now"]').check();
      const now = await p.locator('#box-list li').allInnerTexts();
      assert.ok(now.length > 0);
      assert.equal(await saved(p), 'saved');
      await reloadAndResume(p, 'Project 1 (imported)');
      assert.equal(await p.evaluate(() => document.body.dataset.model), 'project');
      assert.match(await p.locator('#status').innerText(), /with its trained weights/);
      assert.match(await p.locator('#train-status').innerText(), /^Run 1 \(saved\)/);
      // The trained model's predictions come back with the project (not predicted again).
      await p.locator('input[name="view"][value="now"]').check();
      assert.deepEqual(await p.locator('#box-list li').allInnerTexts(), now);
      await p.locator('input[name="view"][value="review"]').check();
      await p.locator('#file-input').setInputFiles(sample);
      await waitImage(p, 14);
      assert.deepEqual(await p.evaluate(() => window.veritunePage.candidates()), trained, 'the same boxes as the trained model');
      assert.equal(await pageErrors(p), '');
      assert.deepEqual(fresh.consoleErrors, []);
    } finally {
      await fresh.close();
    }
  });

  test('load weights: files that do not fit are refused and change nothing; fitting weights are used and kept on reload', { timeout: 3 * WAIT_MS }, async () => {
    mkdirSync(DOWNLOADS, { recursive: true });
    const probe = join(ROOT, 'www/samples/transfer/transfer-05.png');
    const openProbe = async () => {
      const n = await page.locator('#thumbs .thumb').count();
      await page.locator('#file-input').setInputFiles(probe);
      await waitImage(page, n + 1);
      await page.waitForFunction(() => !document.body.dataset.predicting, null, { timeout: TRAIN_MS });
      return page.evaluate(() => window.veritunePage.candidates());
    };
    const before = await openProbe();
    assert.ok(before.length > 0, 'the model finds boxes on the probe image');

    const model = readFileSync(join(ROOT, 'www/assets/model.bpk'));
    const newer = Buffer.from(model);
    const version = newer.indexOf('veritune.formata1') + 'veritune.formata'.length;
    assert.ok(version > 20, 'the format version is in the metadata');
    newer[version] = '9'.charCodeAt(0);
    const classes = await page.locator('#draw-class option').allInnerTexts();
    const untrained = (name, names) => {
      const path = join(DOWNLOADS, name);
      execFileSync(VERITUNE_BIN, ['init', '--classes', names.join(','), '--output', path]);
      return readFileSync(path);
    };
    const refused = [
      ['truncated.bpk', model.subarray(0, model.length >> 1), /cut short|truncated/i],
      ['photo.bpk', readFileSync(probe), /not .*weights|png/i],
      ['newer.bpk', newer, /format version 9\b.*update veritune/],
      ['other-classes.bpk', untrained('other-classes.bpk', ['cat', 'dog']), /detect cat, dog but this project's classes are/],
    ];
    for (const [name, buffer, why] of refused) {
      await page.locator('#weights-input').setInputFiles([{ name, mimeType: 'application/octet-stream', buffer }]);
      await page.waitForFunction((n) => document.getElementById('errors').textContent.includes(`“${n}” were not loaded`), name);
      const text = await pageErrors(page);
      assert.match(text, why, text);
      assert.match(text, /current weights are kept/, text);
      console.log(`refused ${name}: ${text.replace(/\s*×$/, '')}`);
      while ((await page.locator('#errors .error').count()) > 0) await page.locator('#errors .error button').first().click();
    }
    assert.deepEqual(await openProbe(), before, 'refused files changed nothing');

    await page.locator('#weights-input').setInputFiles([{ name: 'fresh.bpk', mimeType: 'application/octet-stream', buffer: untrained('fresh.bpk', classes) }]);
    await page.waitForFunction(() => document.body.dataset.model === 'loaded');
    await page.waitForFunction(() => !document.body.dataset.predicting && document.body.dataset.phase === 'ready', null, { timeout: TRAIN_MS });
    const loaded = await openProbe();
    assert.notDeepEqual(loaded, before, 'the loaded weights predict differently');
    assert.equal(await saved(page), 'saved');
    // Another test's project was opened last: open this one from the start dialog's list.
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.phase === 'choosing');
    await page.getByRole('button', { name: 'Open “Project 1”', exact: true }).click();
    await waitForReady(page);
    assert.equal(await page.evaluate(() => document.body.dataset.model), 'project');
    assert.deepEqual(await openProbe(), loaded, 'after a reload the project goes on with the loaded weights');
    assert.equal(await pageErrors(page), '');
  });

  test('no console errors and no request leaves 127.0.0.1', () => {
    assert.deepEqual(browser.consoleErrors, []);
    assertStaysLocal(browser, server);
  });
});
