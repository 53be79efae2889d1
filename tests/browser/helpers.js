// Shared pieces of the browser tests: the server under test, Chromium, and
// recorders for requests and console errors.
//
// Environment:
//   VERITUNE_SERVE   command that serves www/ ("{port}" is replaced by a free
//                    port, else "--port N" is appended). Default:
//                    $CARGO_TARGET_DIR (or target)/debug/veritune serve --port {port}
//   CHROMIUM         browser binary (default /usr/bin/chromium).
//   VERITUNE_TIMEOUT_MS        waits for page states (default 180000).
//   VERITUNE_TRAIN_TIMEOUT_MS  waits for training to finish (default 900000).
// The page under test is the real build (scripts/build-web puts it in www/).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const WAIT_MS = Number(process.env.VERITUNE_TIMEOUT_MS || 180_000);
export const TRAIN_MS = Number(process.env.VERITUNE_TRAIN_TIMEOUT_MS || 900_000);
export const SCREENSHOTS = join(ROOT, 'target/screenshots');
export const DOWNLOADS = join(ROOT, 'target/browser');
/** The CLI binary that scripts/build-web builds (debug profile). */
export const VERITUNE_BIN = resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target', 'debug/veritune');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Starts the server under test and waits until it answers; `stop()` ends it. */
export async function startServer() {
  const port = await freePort();
  let cmd = process.env.VERITUNE_SERVE || `'${VERITUNE_BIN}' serve --port {port}`;
  cmd = cmd.includes('{port}') ? cmd.replaceAll('{port}', String(port)) : `${cmd} --port ${port}`;
  if (!process.env.VERITUNE_SERVE && !existsSync(VERITUNE_BIN)) {
    throw new Error(`${VERITUNE_BIN} is missing: run scripts/build-web first, or set VERITUNE_SERVE`);
  }
  if (!existsSync(join(ROOT, 'www/pkg/veritune_bg.wasm'))) {
    throw new Error('www/pkg/ has no wasm module: run scripts/build-web first');
  }
  const child = spawn('bash', ['-c', `exec ${cmd}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exitPromise = new Promise((ok) =>
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      ok();
    }),
  );
  const url = `http://127.0.0.1:${port}/`;
  const stop = async () => {
    if (exited) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    const t = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, 5000);
    await exitPromise;
    clearTimeout(t);
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`the server (${cmd}) exited with ${JSON.stringify(exited)} before answering:\n${output}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the server (${cmd}) did not answer on ${url} within 60 s:\n${output}`);
    }
    await sleep(200);
  }
  return { url, port, stop, output: () => output };
}

/** Launches Debian's Chromium headless with a fresh profile (in `userDataDir`). */
export async function launchBrowser({ webgpu = true } = {}) {
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--headless=new'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  else args.push('--disable-webgpu');
  const userDataDir = mkdtempSync(join(tmpdir(), 'veritune-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
    acceptDownloads: true,
    viewport: { width: 1280, height: 720 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(WAIT_MS);
  const requests = [];
  const consoleErrors = [];
  context.on('request', (r) => requests.push({ url: r.url(), method: r.method(), bodyBytes: r.postDataBuffer()?.length ?? 0 }));
  const watch = (page) => {
    page.on('websocket', (ws) => requests.push({ url: ws.url(), method: 'WEBSOCKET', bodyBytes: 0 }));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: uncaught ${e.message}`));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, requests, consoleErrors, close, userDataDir };
}

/** The page's URL with the test's query. */
/**
 * What a test suite runs against: the server, Chromium (WebGPU on or off)
 * and, with `page`, a first page. `stopSuite` ends them.
 */
export async function startSuite({ webgpu, page = true }) {
  const server = await startServer();
  let browser = null;
  try {
    browser = await launchBrowser({ webgpu });
    return { server, browser, page: page ? await browser.context.newPage() : null };
  } catch (e) {
    await stopSuite({ server, browser });
    throw e;
  }
}

/** Closes what `startSuite` started (any part may be missing after a failed start). */
export async function stopSuite({ server, browser }) {
  if (browser) await browser.close();
  if (server) await server.stop();
}

/**
 * The page's address with `query` as its flags. The tests run the small digits
 * model (`model: 'digits'`) unless they name another, or pass `model: null`
 * for the page's default (NanoDet).
 */
export function appUrl(base, query = {}) {
  const u = new URL(base);
  for (const [k, v] of Object.entries({ model: 'digits', ...query })) {
    if (v !== null && v !== undefined) u.searchParams.set(k, v);
  }
  return u.toString();
}

/** URLs of requests that went anywhere but the server on 127.0.0.1 (blob: and data: of the page are fine). */
export function foreignRequests(requests, port) {
  return requests
    .map((r) => r.url)
    .filter((raw) => {
      let u;
      try {
        u = new URL(raw);
      } catch {
        return true;
      }
      if (u.protocol === 'data:') return false;
      if (u.protocol === 'blob:') u = new URL(raw.slice('blob:'.length));
      return !(u.protocol === 'http:' && u.hostname === '127.0.0.1' && u.port === String(port));
    });
}

/**
 * Requests that could carry the user's data even to 127.0.0.1: anything but
 * GET or HEAD, any request body, WebSockets, a query string anywhere but on the
 * page itself, or a URL naming one of `privateNames` (the user's file names).
 */
export function dataCarryingRequests(requests, privateNames = []) {
  return requests.filter(({ url, method, bodyBytes }) => {
    if (!['GET', 'HEAD'].includes(method) || bodyBytes > 0) return true;
    if (url.startsWith('data:') || url.startsWith('blob:')) return false;
    const u = new URL(url);
    if (u.search && !['/', '/index.html'].includes(u.pathname)) return true;
    const decoded = decodeURIComponent(u.pathname + u.search);
    return privateNames.some((name) => decoded.includes(name));
  });
}

/**
 * Fails unless the browser made requests, none left the server on 127.0.0.1
 * and none could carry the user's data (`privateNames`: their file names).
 */
export function assertStaysLocal(browser, server, privateNames = []) {
  assert.ok(browser.requests.length > 0, 'requests were recorded');
  assert.deepEqual(foreignRequests(browser.requests, server.port), []);
  assert.deepEqual(dataCarryingRequests(browser.requests, privateNames), []);
}

/** Text of the page's error area (role=alert), '' when empty. */
export async function pageErrors(page) {
  return (await page.locator('#errors').innerText()).trim();
}

/** Waits until the page has started and shows the current image's prediction; fails with the page's errors. */
export async function waitForReady(page) {
  try {
    await page.waitForFunction(
      () => document.body.dataset.phase === 'ready' || document.body.dataset.phase === 'failed',
      null,
      { timeout: WAIT_MS },
    );
    await page.waitForFunction(
      () => document.body.dataset.phase === 'failed' || document.getElementById('image-canvas').dataset.predicted === 'true',
      null,
      { timeout: WAIT_MS },
    );
  } catch (e) {
    throw new Error(`the page did not become ready: ${e.message}\npage errors: ${await pageErrors(page)}`);
  }
  const phase = await page.evaluate(() => document.body.dataset.phase);
  if (phase !== 'ready') throw new Error(`the page failed to start: ${await pageErrors(page)}`);
}

/** Waits until every sample image is open and predicted and the history library is filled. */
export async function waitForSamplesAndHistory(page) {
  const samples = await page.evaluate(async () => {
    const catalog = await (await fetch('models.json')).json();
    const model = catalog.models.find((m) => m.id === document.body.dataset.modelId);
    return (await (await fetch(`${model.samples}index.json`)).json()).length;
  });
  await page.waitForFunction(
    (n) =>
      document.querySelectorAll('#thumbs .thumb').length >= n && document.body.dataset.history === 'ready' && !document.body.dataset.predicting,
    samples,
    { timeout: TRAIN_MS },
  );
}

/** Reloads and resumes the project offered first in the start dialog, which must be `expectName`. */
export async function reloadAndResume(page, expectName) {
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.phase === 'choosing');
  const resume = page.locator('#projects-resume');
  const offered = await resume.innerText();
  if (offered !== `Resume “${expectName}”`) throw new Error(`the start dialog offers ${offered}, not “${expectName}”`);
  await resume.click();
  await waitForReady(page);
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name) });
}

/** Sets the threshold slider the way a user would (input, then change). */
export async function setThreshold(page, value) {
  await page.locator('#threshold').evaluate((el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);
}

/** Lowers the threshold until the current image shows at least `n` boxes; returns the count. */
export async function ensureShownBoxes(page, n) {
  const count = () => page.locator('#box-list li[data-box^="shown-"]').count();
  let c = await count();
  for (const t of [0.4, 0.3, 0.2, 0.1, 0.05]) {
    if (c >= n) break;
    await setThreshold(page, t);
    c = await count();
  }
  return c;
}

/** Drags on the canvas from/to fractions of its size. */
export async function dragOnCanvas(page, from, to) {
  const box = await page.locator('#image-canvas').boundingBox();
  const at = ([fx, fy]) => [box.x + box.width * fx, box.y + box.height * fy];
  const [x0, y0] = at(from);
  const [x1, y1] = at(to);
  await page.mouse.move(x0, y0);
  await page.mouse.down();
  for (let k = 1; k <= 8; k++) await page.mouse.move(x0 + ((x1 - x0) * k) / 8, y0 + ((y1 - y0) * k) / 8);
  await page.mouse.up();
}

/**
 * Starts recording the main thread's long tasks (over 50 ms, the browser's
 * own threshold); resolves with a function that stops and returns their
 * durations in milliseconds, longest first.
 */
export async function watchLongTasks(page) {
  await page.evaluate(() => {
    const durations = [];
    const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => durations.push(e.duration)));
    observer.observe({ type: 'longtask' });
    window.__longTasks = () => {
      observer.disconnect();
      return durations.sort((a, b) => b - a);
    };
  });
  return () => page.evaluate(() => window.__longTasks());
}

/** Reads the five counters. */
export async function counters(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      ['correct', 'missed', 'false', 'samples', 'history'].map((k) => [k, Number(document.getElementById(`count-${k}`).textContent)]),
    ),
  );
}

/**
 * Sets epochs (exactly that many, or at most that many `untilHonored`),
 * presses Train and waits for the run (and the prediction pass after it) to end.
 */
export async function trainAndWait(page, { epochs = 1, untilHonored = false } = {}) {
  await page.locator('#epochs').fill(String(epochs));
  await page.locator('#until-honored').setChecked(untilHonored);
  const attempts = await trainAttempts(page);
  await page.locator('#train').click();
  await waitTrainingDone(page, attempts);
}

export function trainAttempts(page) {
  return page.evaluate(() => Number(document.body.dataset.trainAttempts || 0));
}

/** Waits until the page has finished training attempt number `before + 1` (and predicted again). */
export async function waitTrainingDone(page, before) {
  try {
    await page.waitForFunction(
      (n) =>
        Number(document.body.dataset.trainAttempts || 0) > n &&
        document.body.dataset.phase === 'ready' &&
        !document.body.dataset.predicting,
      before,
      { timeout: TRAIN_MS, polling: 250 },
    );
  } catch (e) {
    throw new Error(`training did not end: ${e.message}\nstatus: ${await page.locator('#train-status').innerText()}\npage errors: ${await pageErrors(page)}`);
  }
}

/** The candidates the native CLI predicts with `model` (weights file) on `image`, as its JSON text. */
export function cliPredict(model, image) {
  return execFileSync(VERITUNE_BIN, ['predict', '--candidates', '--model', model, image], { encoding: 'utf8' });
}

/** Waits for `count` downloads started by `action()`; returns them by suggested file name. */
export async function downloadsOf(page, count, action) {
  const downloads = [];
  const listen = (d) => downloads.push(d);
  page.on('download', listen);
  try {
    await action();
    const deadline = Date.now() + WAIT_MS;
    while (downloads.length < count && Date.now() < deadline) await page.waitForTimeout(100);
  } finally {
    page.off('download', listen);
  }
  if (downloads.length !== count) {
    throw new Error(`expected ${count} downloads, got ${downloads.length} (errors: ${await pageErrors(page)})`);
  }
  return Object.fromEntries(downloads.map((d) => [d.suggestedFilename(), d]));
}

export { mkdirSync, join };
