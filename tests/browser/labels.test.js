// Browser tests of labels in standard formats: the verdicts exported as COCO,
// YOLO (zip) and Pascal VOC (zip), read back by Python's zipfile and the
// native CLI; COCO and YOLO files imported as verdicts, and undone. On the
// CPU backend (?backend=cpu). See helpers.js for the environment variables.
//   node --test tests/browser/labels.test.js
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  DOWNLOADS,
  ROOT,
  VERITUNE_BIN,
  WAIT_MS,
  appUrl,
  downloadsOf,
  dragOnCanvas,
  ensureShownBoxes,
  pageErrors,
  startSuite,
  stopSuite,
  waitForReady,
} from './helpers.js';

const shown = (page) => page.locator('#box-list li[data-box^="shown-"]');
const SAMPLES = join(ROOT, 'www/samples/transfer');
const OUT = join(DOWNLOADS, 'labels');

/** How many boxes of the current image have each judgement (drawn boxes as `drawn`). */
async function judgementCounts(page) {
  const kinds = await page.locator('#box-list li[data-box]').evaluateAll((ls) => ls.map((l) => l.dataset.judgement));
  const counts = { unjudged: 0, confirmed: 0, rejected: 0, corrected: 0, drawn: 0 };
  for (const k of kinds) counts[k] += 1;
  return counts;
}

/** The session's sample count once it agrees with the images the page shows as reviewed. */
async function reviewedSamples(page) {
  return page.evaluate(async () => {
    const reviewed = ['correct', 'missed', 'false', 'missed-false'];
    for (;;) {
      const local = [...document.querySelectorAll('#thumbs .thumb')].filter((t) => reviewed.includes(t.dataset.state)).length;
      const session = Number(document.getElementById('count-samples').textContent);
      if (local === session) return session;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

async function openImage(page, name) {
  await page.locator('#thumbs .thumb', { hasText: name }).click();
  await page.waitForFunction((n) => document.getElementById('image-name').textContent.endsWith(n), name);
  await page.waitForFunction(() => !document.getElementById('confirm-all').disabled);
}

/** Extracts a ZIP archive with Python's zipfile; returns its entry names. */
function unzip(file, folder) {
  rmSync(folder, { recursive: true, force: true });
  const script = 'import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nz.extractall(sys.argv[2])\nprint("\\n".join(z.namelist()))';
  return execFileSync('python3', ['-c', script, file, folder], { encoding: 'utf8' }).trim().split('\n');
}

/** The boxes of `fileName` in a COCO document as {name, x0, y0, x1, y1}, sorted. */
function cocoBoxes(coco, fileName) {
  const image = coco.images.find((i) => i.file_name === fileName);
  assert.ok(image, `${fileName} in ${coco.images.map((i) => i.file_name)}`);
  const names = new Map(coco.categories.map((c) => [c.id, c.name]));
  return sortBoxes(
    coco.annotations
      .filter((a) => a.image_id === image.id)
      .map((a) => ({ name: names.get(a.category_id), x0: a.bbox[0], y0: a.bbox[1], x1: a.bbox[0] + a.bbox[2], y1: a.bbox[1] + a.bbox[3] })),
  );
}

function sortBoxes(boxes) {
  return boxes.sort((a, b) => a.x0 - b.x0 || a.y0 - b.y0 || a.name.localeCompare(b.name));
}

function assertSameBoxes(found, expected, what) {
  assert.equal(found.length, expected.length, `${what}: ${JSON.stringify(found)} vs ${JSON.stringify(expected)}`);
  found.forEach((f, k) => {
    const e = expected[k];
    assert.equal(f.name, e.name, what);
    for (const c of ['x0', 'y0', 'x1', 'y1']) assert.ok(Math.abs(f[c] - e[c]) < 1e-3, `${what}: ${c} ${f[c]} vs ${e[c]}`);
  });
}

describe('labels in standard formats', { timeout: 6 * WAIT_MS }, () => {
  let server;
  let browser;
  let page;
  let classNames;

  before(async () => {
    ({ server, browser, page } = await startSuite({ webgpu: false }));
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
  });

  after(() => stopSuite({ server, browser }));

  test('the verdicts download as COCO, YOLO and VOC that Python and the CLI read back', { timeout: 3 * WAIT_MS }, async () => {
    await page.goto(appUrl(server.url, { backend: 'cpu' }));
    await waitForReady(page);
    classNames = await page.locator('#draw-class option').allInnerTexts();
    // Image 1: confirm one box, reject one, draw a missed object, confirm the rest.
    assert.ok((await ensureShownBoxes(page, 2)) >= 2, 'two shown boxes on the first sample');
    await shown(page).nth(0).locator('[data-action="confirm"]').click();
    await shown(page).nth(1).locator('[data-action="reject"]').click();
    await page.locator('input[name="mode"][value="draw"]').check();
    await dragOnCanvas(page, [0.42, 0.42], [0.58, 0.6]);
    await page.locator('#box-list li[data-box="drawn-0"]').waitFor();
    await page.locator('input[name="mode"][value="edit"]').check();
    await page.locator('#confirm-all').click();
    const labels = await page.evaluate(() => window.veritunePage.labels());
    assert.equal(labels.name, 'transfer-00.png');
    assert.deepEqual([labels.width, labels.height], [labels.originalWidth, labels.originalHeight], 'samples are not downscaled');
    const expected = sortBoxes(labels.boxes.map((b) => ({ name: classNames[b.class], ...b.bbox })));
    const counts = await judgementCounts(page);
    assert.equal(expected.length, counts.confirmed + counts.drawn, 'confirmed and drawn boxes are the labels');

    const download = async (format) => {
      await page.locator('#label-format').selectOption(format);
      const files = await downloadsOf(page, 1, () => page.locator('#export-labels').click());
      const [name] = Object.keys(files);
      const path = join(OUT, name);
      await files[name].saveAs(path);
      return { name, path };
    };

    const coco = await download('coco');
    assert.equal(coco.name, 'veritune-labels-coco.json');
    const doc = JSON.parse(readFileSync(coco.path, 'utf8'));
    assert.deepEqual(doc.images, [{ id: 1, file_name: 'transfer-00.png', width: 256, height: 256 }], 'only the reviewed image');
    assert.deepEqual(doc.categories.map((c) => c.name), classNames);
    assertSameBoxes(cocoBoxes(doc, 'transfer-00.png'), expected, 'COCO');

    const convert = (from, folder, extra = []) => {
      const out = join(OUT, `${from}-as-coco.json`);
      execFileSync(VERITUNE_BIN, ['labels', 'convert', '--from', from, '--to', 'coco', ...extra, folder, out], { stdio: 'pipe' });
      return JSON.parse(readFileSync(out, 'utf8'));
    };

    const yolo = await download('yolo');
    assert.equal(yolo.name, 'veritune-labels-yolo.zip');
    const yoloDir = join(OUT, 'yolo');
    assert.deepEqual(unzip(yolo.path, yoloDir), ['classes.txt', 'transfer-00.txt']);
    assert.deepEqual(readFileSync(join(yoloDir, 'classes.txt'), 'utf8').trim().split('\n'), classNames);
    const lines = readFileSync(join(yoloDir, 'transfer-00.txt'), 'utf8').trim().split('\n');
    assert.equal(lines.length, expected.length);
    assertSameBoxes(cocoBoxes(convert('yolo', yoloDir, ['--images', SAMPLES]), 'transfer-00.png'), expected, 'YOLO read by the CLI');

    const voc = await download('voc');
    assert.equal(voc.name, 'veritune-labels-voc.zip');
    const vocDir = join(OUT, 'voc');
    assert.deepEqual(unzip(voc.path, vocDir), ['transfer-00.xml']);
    const xml = readFileSync(join(vocDir, 'transfer-00.xml'), 'utf8');
    assert.match(xml, /<filename>transfer-00\.png<\/filename>/);
    assert.equal(xml.match(/<object>/g).length, expected.length);
    assertSameBoxes(cocoBoxes(convert('voc', vocDir), 'transfer-00.png'), expected, 'VOC read by the CLI');
    assert.deepEqual(readdirSync(OUT).filter((n) => n.endsWith('.zip')).sort(), ['veritune-labels-voc.zip', 'veritune-labels-yolo.zip']);
    assert.equal(await pageErrors(page), '');
  });

  test('COCO and YOLO files become verdicts, reported, persisted, and one undo reverts each import', { timeout: 3 * WAIT_MS }, async () => {
    // The threshold first (lowering it may show new boxes on reviewed images).
    await openImage(page, 'transfer-02.png');
    assert.ok((await ensureShownBoxes(page, 1)) >= 1, 'a shown box on transfer-02');
    await openImage(page, 'transfer-01.png');
    assert.ok((await ensureShownBoxes(page, 1)) >= 1, 'a shown box on transfer-01');
    const before = await reviewedSamples(page);

    // COCO for transfer-01: its best shown box, a missed object, a box of a
    // class the model lacks; and an image that is not open.
    const shown1 = await page.evaluate(() => window.veritunePage.shown());
    const unjudged1 = await judgementCounts(page);
    const best = shown1[0];
    const iou = (a, b) => {
      const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
      const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
      const inter = w > 0 && h > 0 ? w * h : 0;
      return inter / ((a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter);
    };
    const missed = [
      { x0: 2, y0: 2, x1: 14, y1: 14 },
      { x0: 240, y0: 240, x1: 254, y1: 254 },
      { x0: 2, y0: 240, x1: 14, y1: 254 },
    ].find((b) => shown1.every((s) => iou(s.bbox, b) < 0.3));
    assert.ok(missed, 'a corner free of shown boxes');
    const xywh = (b) => [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0];
    const coco = {
      images: [
        { id: 1, file_name: 'transfer-01.png', width: 256, height: 256 },
        { id: 2, file_name: 'elsewhere/not-open.png', width: 256, height: 256 },
      ],
      annotations: [
        { id: 1, image_id: 1, category_id: best.class + 1, bbox: xywh(best.bbox) },
        { id: 2, image_id: 1, category_id: 1, bbox: xywh(missed) },
        { id: 3, image_id: 1, category_id: 100, bbox: [100, 100, 20, 20] },
        { id: 4, image_id: 2, category_id: 1, bbox: [10, 10, 20, 20] },
      ],
      categories: [...classNames.map((name, k) => ({ id: k + 1, name })), { id: 100, name: 'zebra' }],
    };
    await page.locator('#labels-input').setInputFiles([
      { name: 'labels.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(coco)) },
    ]);
    await page.waitForFunction(() => document.getElementById('import-report').textContent !== '');
    const report = await page.locator('#import-report').innerText();
    assert.match(report, /^Imported COCO labels for 1 image \(2 objects\): 1 shown box confirmed, \d+ corrected \(the right object under another class\), \d+ rejected, 1 drawn\./, report);
    assert.match(report, /1 label entry names an image that is not open: “elsewhere\/not-open\.png”/, report);
    assert.match(report, /The model has no class “zebra”: 1 box was skipped\./, report);
    assert.match(await page.locator('#image-name').innerText(), /transfer-01\.png$/);
    const imported1 = await judgementCounts(page);
    assert.deepEqual(imported1, { unjudged: 0, confirmed: 1, rejected: shown1.length - 1, corrected: 0, drawn: 1 });
    assert.equal(await reviewedSamples(page), before + 1);
    assert.equal(await page.evaluate(() => window.veritunePage.saved()), 'saved');

    // YOLO for transfer-02: its best shown box only, and a label file of no open image.
    await openImage(page, 'transfer-02.png');
    const shown2 = await page.evaluate(() => window.veritunePage.shown());
    const unjudged2 = await judgementCounts(page);
    const b = shown2[0].bbox;
    const line = [shown2[0].class, (b.x0 + b.x1) / 512, (b.y0 + b.y1) / 512, (b.x1 - b.x0) / 256, (b.y1 - b.y0) / 256].join(' ');
    const text = (name, body) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(body) });
    // A broken line is refused with the file and line named, and changes nothing.
    await page.locator('#labels-input').setInputFiles([text('classes.txt', classNames.join('\n')), text('transfer-02.txt', '0 0.5 0.5\n')]);
    await page.waitForFunction(() => document.getElementById('errors').textContent.includes('transfer-02.txt'));
    assert.match(await pageErrors(page), /The labels could not be imported: transfer-02\.txt, line 1: it has 3 values where 5 are expected/);
    assert.deepEqual(await judgementCounts(page), unjudged2);
    while ((await page.locator('#errors .error').count()) > 0) await page.locator('#errors .error button').first().click();

    await page.locator('#labels-input').setInputFiles([
      text('classes.txt', classNames.join('\n')),
      text('transfer-02.txt', `${line}\n`),
      text('missing.txt', '0 0.5 0.5 0.1 0.1\n'),
    ]);
    await page.waitForFunction(() => document.getElementById('import-report').textContent.startsWith('Imported YOLO'));
    const report2 = await page.locator('#import-report').innerText();
    assert.match(report2, /^Imported YOLO labels for 1 image \(1 object\): 1 shown box confirmed, \d+ corrected \(the right object under another class\), \d+ rejected, 0 drawn\./, report2);
    assert.match(report2, /“missing\.txt”/, report2);
    assert.deepEqual(await judgementCounts(page), { unjudged: 0, confirmed: 1, rejected: shown2.length - 1, corrected: 0, drawn: 0 });
    assert.equal(await reviewedSamples(page), before + 2);

    // Undo reverts the YOLO import, then the COCO one, each in one step.
    await page.locator('#undo').click();
    assert.match(await page.locator('#image-name').innerText(), /transfer-02\.png$/);
    assert.deepEqual(await judgementCounts(page), unjudged2);
    await page.locator('#undo').click();
    assert.match(await page.locator('#image-name').innerText(), /transfer-01\.png$/);
    assert.deepEqual(await judgementCounts(page), unjudged1);
    assert.equal(await reviewedSamples(page), before);
    // Redo brings the COCO import back.
    await page.locator('#redo').click();
    assert.deepEqual(await judgementCounts(page), imported1);
    assert.equal(await pageErrors(page), '');
    assert.deepEqual(browser.consoleErrors, []);
  });
});
