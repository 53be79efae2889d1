// Projects that survive a reload: every image, verdict, drawn box, the
// current weights and the records of training runs, saved in this browser.
//
// Storage layout (see ARCHITECTURE.md):
//   IndexedDB database "veritune" (version 1)
//     projects  key id                    one record per project (name, settings, current image, summary)
//     images    key [projectId, id]       per image: name, size, prediction the verdicts refer to, verdicts, drawn boxes
//     runs      key [projectId, index]    per training run: options, per-step records, before/after figures
//   Origin private file system (navigator.storage.getDirectory())
//     projects/<projectId>/images/<imageId>   the image file's bytes, as opened
//     projects/<projectId>/weights.bpk        the current weights (burnpack) once the project has trained
//
// A project file (export/import) is one binary container:
//   "VERITUNE-PROJECT" (16 ASCII bytes), a little-endian u32 with the byte
//   length of a UTF-8 JSON manifest, the manifest, then the blobs
//   concatenated; the manifest gives each blob's offset and length from the
//   start of the blob area and carries `format` and `version`.

import { verdictState } from './verdict-state.js';

export const FORMAT = 'veritune-project';
/** The project format this page writes; files of a higher version are refused. */
export const FORMAT_VERSION = 1;
export const FILE_EXTENSION = '.veritune';
const MAGIC = 'VERITUNE-PROJECT';
/** Bytes before the manifest: the magic and the manifest's length. */
const HEADER_LEN = MAGIC.length + 4;
const DB_NAME = 'veritune';
const DB_VERSION = 1;
const LOCK_PREFIX = 'veritune-project:';

// ---------------------------------------------------------------- errors

/** Whether an error is the browser's "storage is full". */
export function isQuotaError(e) {
  if (!e) return false;
  if (e.name === 'QuotaExceededError') return true;
  // Some engines report a full disk through IndexedDB as an UnknownError mentioning quota.
  return /quota|storage is full|no space/i.test(String(e.message || ''));
}

function reason(e) {
  const t = String((e && e.message) || e || 'unknown error').trim().replace(/[.\s]+$/, '');
  return t || 'unknown error';
}

// ---------------------------------------------------------------- IndexedDB helpers

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new DOMException('The transaction was aborted', 'AbortError'));
    tx.onerror = (ev) => ev.preventDefault(); // reported through onabort
  });
}

/** Runs `fn(stores)` in one transaction; resolves with its result once committed. */
async function transact(db, names, mode, fn) {
  const tx = db.transaction(names, mode, { durability: 'strict' });
  const end = finished(tx);
  const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
  let result;
  try {
    result = await fn(stores);
  } catch (e) {
    try {
      tx.abort();
    } catch {}
    await end.catch(() => {});
    throw e;
  }
  await end;
  return result;
}

function openDb() {
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) {
      reject(new Error('this browser offers no IndexedDB'));
      return;
    }
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('projects')) db.createObjectStore('projects', { keyPath: 'id' });
      if (!db.objectStoreNames.contains('images')) {
        db.createObjectStore('images', { keyPath: ['projectId', 'id'] }).createIndex('byProject', 'projectId');
      }
      if (!db.objectStoreNames.contains('runs')) {
        db.createObjectStore('runs', { keyPath: ['projectId', 'index'] }).createIndex('byProject', 'projectId');
      }
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another tab upgrading the schema: let it, this tab's later writes then fail with a message.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('another tab keeps an older version of the project database open; close it and reload'));
  });
}

function newId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `p${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

// ---------------------------------------------------------------- records

/** An image entry of the page as a stored record (without its bytes). */
export function imageRecord(projectId, entry, order) {
  const { judgements, drawn, touched } = verdictState(entry);
  return {
    projectId,
    id: entry.id,
    order,
    name: entry.name,
    source: entry.source,
    type: (entry.file && entry.file.type) || '',
    bytes: entry.file ? entry.file.size : 0,
    width: entry.width,
    height: entry.height,
    originalWidth: entry.originalWidth,
    originalHeight: entry.originalHeight,
    base: entry.base ? { candidates: entry.base.candidates, model: entry.base.model } : null,
    // The model's latest prediction when it differs from base (after training).
    latest: entry.latest && entry.latest !== entry.base && !entry.stale ? { candidates: entry.latest.candidates, model: entry.latest.model } : null,
    latestIsBase: Boolean(entry.latest) && entry.latest === entry.base && !entry.stale,
    judgements,
    drawn,
    touched,
  };
}

const prediction = (p) => (p && Array.isArray(p.candidates) ? { candidates: p.candidates, model: Number.isInteger(p.model) ? p.model : null } : null);

/** The predictions of a stored image record, and its verdict state (verdict-state.js). */
export function verdictsOfRecord(record) {
  return {
    base: prediction(record.base),
    latest: prediction(record.latest),
    latestIsBase: Boolean(record.latestIsBase),
    judgements: Array.isArray(record.judgements) ? record.judgements : [],
    drawn: Array.isArray(record.drawn) ? record.drawn : [],
    touched: Boolean(record.touched),
  };
}

// ---------------------------------------------------------------- the store

/**
 * Opens the project store: IndexedDB for records, the origin private file
 * system for image files and weights. Throws an Error with a sentence when
 * the browser offers neither.
 */
export async function openStore() {
  let db;
  try {
    db = await openDb();
  } catch (e) {
    throw new Error(`Projects cannot be saved in this browser (${reason(e)}); work in this tab is not kept after a reload`);
  }
  let root;
  try {
    if (!navigator.storage || !navigator.storage.getDirectory) throw new Error('navigator.storage.getDirectory is missing');
    const opfs = await navigator.storage.getDirectory();
    root = await opfs.getDirectoryHandle('projects', { create: true });
  } catch (e) {
    db.close();
    throw new Error(`Projects cannot be saved in this browser: its private file system is not available (${reason(e)}); work in this tab is not kept after a reload`);
  }
  return new Store(db, root);
}

export class Store {
  constructor(db, root) {
    this.db = db;
    this.root = root;
  }

  /** Every project, the most recently opened first. */
  async list() {
    const all = await transact(this.db, ['projects'], 'readonly', (s) => done(s.projects.getAll()));
    return all.sort((a, b) => (b.openedAt || '').localeCompare(a.openedAt || ''));
  }

  get(id) {
    return transact(this.db, ['projects'], 'readonly', (s) => done(s.projects.get(id)));
  }

  /** A name not yet used by a project: `base` (unless `numbered`), else `base 2`, `base 3`… */
  async freeName(base, numbered = false) {
    const names = new Set((await this.list()).map((p) => p.name));
    if (!numbered && !names.has(base)) return base;
    for (let k = numbered ? 1 : 2; ; k++) if (!names.has(`${base} ${k}`)) return `${base} ${k}`;
  }

  /** Creates and returns a new, empty project record. */
  async create(fields = {}) {
    const now = new Date().toISOString();
    const record = {
      id: newId(),
      name: fields.name || (await this.freeName('Project', true)),
      version: FORMAT_VERSION,
      createdAt: now,
      updatedAt: now,
      openedAt: now,
      baseModelHash: '',
      classNames: [],
      settings: {},
      current: null,
      nextId: 1,
      weights: null,
      history: null,
      summary: { images: 0, reviewed: 0, runs: 0, bytes: 0 },
      ...fields,
    };
    await transact(this.db, ['projects'], 'readwrite', (s) => done(s.projects.add(record)));
    // Ask the browser not to evict the projects under storage pressure (no prompt in Chromium).
    navigator.storage?.persist?.().catch(() => {});
    return record;
  }

  async rename(id, name) {
    const clean = String(name).trim().slice(0, 200);
    if (!clean) throw new Error('A project needs a name');
    await transact(this.db, ['projects'], 'readwrite', async (s) => {
      const p = await done(s.projects.get(id));
      if (!p) throw new Error('The project no longer exists');
      p.name = clean;
      await done(s.projects.put(p));
    });
    return clean;
  }

  async delete(id) {
    await transact(this.db, ['projects', 'images', 'runs'], 'readwrite', async (s) => {
      s.projects.delete(id);
      const range = IDBKeyRange.bound([id], [id, []]);
      s.images.delete(range);
      s.runs.delete(range);
    });
    await this.root.removeEntry(id, { recursive: true }).catch((e) => {
      if (e && e.name !== 'NotFoundError') throw e;
    });
  }

  async images(projectId) {
    const all = await transact(this.db, ['images'], 'readonly', (s) => done(s.images.index('byProject').getAll(projectId)));
    return all.sort((a, b) => a.order - b.order);
  }

  async runs(projectId) {
    const all = await transact(this.db, ['runs'], 'readonly', (s) => done(s.runs.index('byProject').getAll(projectId)));
    return all.sort((a, b) => a.index - b.index);
  }

  /** Writes project, image and run records in one transaction. */
  putRecords({ project = null, images = [], runs = [] }) {
    const names = ['projects', 'images', 'runs'];
    return transact(this.db, names, 'readwrite', async (s) => {
      if (project) s.projects.put(project);
      for (const r of images) s.images.put(r);
      for (const r of runs) s.runs.put(r);
    });
  }

  async dir(projectId, sub = null, create = true) {
    const p = await this.root.getDirectoryHandle(projectId, { create });
    return sub ? p.getDirectoryHandle(sub, { create }) : p;
  }

  /** Writes a file atomically (the browser swaps it in when the stream closes). */
  async writeFile(dir, name, data) {
    const handle = await dir.getFileHandle(name, { create: true });
    const stream = await handle.createWritable();
    try {
      await stream.write(data);
      await stream.close();
    } catch (e) {
      await stream.abort().catch(() => {});
      throw e;
    }
  }

  async writeImage(projectId, imageId, blob) {
    await this.writeFile(await this.dir(projectId, 'images'), imageId, blob);
  }

  /** The stored bytes of an image as a File, or null when missing. */
  async readImage(projectId, imageId) {
    try {
      const dir = await this.dir(projectId, 'images', false);
      return await (await dir.getFileHandle(imageId)).getFile();
    } catch (e) {
      if (e && (e.name === 'NotFoundError' || e.name === 'TypeError')) return null;
      throw e;
    }
  }

  async writeWeights(projectId, bytes) {
    await this.writeFile(await this.dir(projectId), 'weights.bpk', bytes);
  }

  async readWeights(projectId) {
    try {
      const dir = await this.dir(projectId, null, false);
      const file = await (await dir.getFileHandle('weights.bpk')).getFile();
      return new Uint8Array(await file.arrayBuffer());
    } catch (e) {
      if (e && e.name === 'NotFoundError') return null;
      throw e;
    }
  }

  // ------------------------------------------------------------ tabs

  /**
   * Holds the project's lock for the life of this page so a second tab does
   * not write the same project. Resolves false when another tab holds it.
   */
  static lock(id) {
    if (!navigator.locks) return Promise.resolve(true);
    return new Promise((resolve) => {
      navigator.locks
        .request(LOCK_PREFIX + id, { ifAvailable: true }, (lock) => {
          resolve(Boolean(lock));
          return lock ? new Promise(() => {}) : undefined;
        })
        .catch(() => resolve(true));
    });
  }

  /** Ids of the projects open in some tab of this browser. */
  static async openIds() {
    if (!navigator.locks || !navigator.locks.query) return new Set();
    const { held = [] } = await navigator.locks.query();
    return new Set(held.map((l) => l.name).filter((n) => n.startsWith(LOCK_PREFIX)).map((n) => n.slice(LOCK_PREFIX.length)));
  }

  // ------------------------------------------------------------ project files

  /**
   * One project as a single file (Blob). `images` are [record, blob] pairs,
   * `weights` burnpack bytes or null, `runs` the run records.
   */
  static encode({ project, images, weights, runs }) {
    const parts = [];
    let offset = 0;
    const place = (blob) => {
      const at = { offset, length: blob.size };
      parts.push(blob);
      offset += blob.size;
      return at;
    };
    const manifest = {
      format: FORMAT,
      version: FORMAT_VERSION,
      exportedAt: new Date().toISOString(),
      project: {
        name: project.name,
        createdAt: project.createdAt,
        model: project.model ?? null,
        baseModelHash: project.baseModelHash,
        classNames: project.classNames,
        settings: project.settings,
        current: project.current,
        nextId: project.nextId,
        history: project.history ?? null,
      },
      images: images.map(([record, blob]) => {
        const { projectId, ...rest } = record;
        return { ...rest, blob: place(blob) };
      }),
      weights: weights ? place(new Blob([weights])) : null,
      runs: runs.map(({ projectId, ...rest }) => rest),
    };
    const json = new TextEncoder().encode(JSON.stringify(manifest));
    const head = new Uint8Array(HEADER_LEN);
    head.set(new TextEncoder().encode(MAGIC), 0);
    new DataView(head.buffer).setUint32(MAGIC.length, json.length, true);
    return new Blob([head, json, ...parts], { type: 'application/octet-stream' });
  }

  /** Reads a project file's manifest; throws a sentence for anything else. */
  static async readManifest(file) {
    const name = file.name ? `“${file.name}”` : 'The file';
    // The checks are the wasm module's (src/project_file.rs, fuzzed); app.js has loaded it.
    const wasm = await import('./pkg/veritune.js');
    const read = async (check, from, to) => {
      try {
        return check(new Uint8Array(await file.slice(from, to).arrayBuffer()), file.size);
      } catch (e) {
        throw new Error(`${name} ${reason(e)}`);
      }
    };
    const length = await read(wasm.projectManifestLength, 0, HEADER_LEN);
    const manifest = await read(wasm.checkProjectManifest, HEADER_LEN, HEADER_LEN + length);
    return { manifest, area: HEADER_LEN + length };
  }

  /** Imports a project file as a new project; returns its record. */
  async import(file) {
    const { manifest, area } = await Store.readManifest(file);
    const p = manifest.project;
    const baseName = String(p.name || 'Imported project').slice(0, 180);
    const names = new Set((await this.list()).map((x) => x.name));
    const name = names.has(baseName) ? await this.freeName(`${baseName} (imported)`) : baseName;
    const slice = (at) => file.slice(area + at.offset, area + at.offset + at.length);
    const record = await this.create({
      name,
      createdAt: p.createdAt || new Date().toISOString(),
      model: typeof p.model === 'string' ? p.model : null,
      baseModelHash: String(p.baseModelHash || ''),
      classNames: Array.isArray(p.classNames) ? p.classNames : [],
      settings: p.settings && typeof p.settings === 'object' ? p.settings : {},
      current: p.current ?? null,
      nextId: Number(p.nextId) || manifest.images.length + 1,
      history: Array.isArray(p.history) ? p.history.map(String) : null,
    });
    try {
      let bytes = 0;
      const images = [];
      for (const [k, im] of manifest.images.entries()) {
        const { blob, ...rest } = im;
        const id = String(rest.id || `img-${k + 1}`);
        await this.writeImage(record.id, id, slice(blob));
        bytes += blob.length;
        images.push({ ...rest, id, projectId: record.id, order: k, bytes: blob.length });
      }
      if (manifest.weights) {
        await this.writeWeights(record.id, slice(manifest.weights));
        bytes += manifest.weights.length;
        record.weights = { bytes: manifest.weights.length, savedAt: manifest.exportedAt || record.createdAt };
      }
      const runs = (manifest.runs || []).map((r, k) => ({ ...r, index: Number(r.index) || k + 1, projectId: record.id }));
      record.summary = {
        images: images.length,
        reviewed: images.filter((r) => r.touched).length,
        runs: runs.length,
        bytes,
      };
      await this.putRecords({ project: record, images, runs });
      return record;
    } catch (e) {
      await this.delete(record.id).catch(() => {});
      if (isQuotaError(e)) throw new Error(`The browser's storage is full: “${name}” could not be imported; delete a project and try again`);
      throw e;
    }
  }
}

// ---------------------------------------------------------------- the open project

/**
 * The project open in this tab, saved after every change. Calls queue what
 * changed; one writer at a time stores it (files first, then the records in
 * one transaction). A failed write (the storage is full) keeps what was not
 * saved queued, reports `failed` and tries again with the next change.
 *
 * `onState(state, error)`: state is 'saving', 'saved' or 'failed'.
 */
export class OpenProject {
  constructor(store, record, onState = () => {}) {
    this.store = store;
    this.record = record;
    this.onState = onState;
    this.images = new Map(); // id -> record to write
    this.blobs = new Map(); // id -> Blob to write
    this.runs = new Map(); // index -> run record
    this.weights = null; // bytes to write
    this.projectDirty = false;
    this.running = null;
    this.state = 'saved';
    this.error = null;
    /** Called with each run record once it is written (with the weights queued with it). */
    this.onRunWritten = () => {};
  }

  get id() {
    return this.record.id;
  }

  /** Merges `fields` into the project record and saves it. */
  saveProject(fields = {}) {
    Object.assign(this.record, fields);
    this.projectDirty = true;
    return this.kick();
  }

  saveImage(record, blob = null) {
    this.images.set(record.id, record);
    if (blob) this.blobs.set(record.id, blob);
    this.projectDirty = true;
    return this.kick();
  }

  saveRun(run) {
    const { projectId, ...rest } = run;
    this.runs.set(run.index, { ...rest, projectId: this.id });
    this.projectDirty = true;
    return this.kick();
  }

  saveWeights(bytes) {
    this.weights = bytes;
    this.projectDirty = true;
    return this.kick();
  }

  /** Resolves when everything queued so far is written (or the write failed). */
  flush() {
    return this.kick();
  }

  get pending() {
    return this.projectDirty || this.images.size > 0 || this.blobs.size > 0 || this.runs.size > 0 || this.weights !== null;
  }

  kick() {
    if (!this.running) {
      this.running = this.write().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async write() {
    // Let the caller finish the change it is making (and the ones right after) first.
    await new Promise((r) => setTimeout(r, 0));
    while (this.pending) {
      this.setState('saving');
      const images = this.images;
      const blobs = this.blobs;
      const runs = this.runs;
      const weights = this.weights;
      this.images = new Map();
      this.blobs = new Map();
      this.runs = new Map();
      this.weights = null;
      this.projectDirty = false;
      const writtenBlobs = new Set();
      let weightsWritten = false;
      try {
        for (const [id, blob] of blobs) {
          await this.store.writeImage(this.id, id, blob);
          writtenBlobs.add(id);
        }
        if (weights) {
          await this.store.writeWeights(this.id, weights);
          weightsWritten = true;
          this.record.weights = { bytes: weights.length, savedAt: new Date().toISOString() };
        }
        this.record.updatedAt = new Date().toISOString();
        await this.store.putRecords({
          project: this.record,
          // An image record is written only once its file is.
          images: [...images.values()],
          runs: [...runs.values()],
        });
        for (const run of runs.values()) this.onRunWritten(run);
      } catch (e) {
        // Put back what was not written unless a newer version is queued.
        for (const [id, r] of images) if (!this.images.has(id)) this.images.set(id, r);
        for (const [id, b] of blobs) if (!writtenBlobs.has(id) && !this.blobs.has(id)) this.blobs.set(id, b);
        for (const [k, r] of runs) if (!this.runs.has(k)) this.runs.set(k, r);
        if (weights && !weightsWritten && !this.weights) this.weights = weights;
        this.projectDirty = true;
        this.error = e;
        this.setState('failed', e);
        return false;
      }
      this.error = null;
    }
    this.setState('saved');
    return true;
  }

  setState(state, error = null) {
    const was = this.state;
    this.state = state;
    if (state !== was || error) this.onState(state, error);
  }
}

/** Human-readable byte count. */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** "used X of Y" from navigator.storage.estimate(), or '' when unknown. */
export async function storageUse() {
  try {
    const { usage, quota } = await navigator.storage.estimate();
    if (!Number.isFinite(usage)) return '';
    return Number.isFinite(quota) ? `${formatBytes(usage)} of ${formatBytes(quota)}` : formatBytes(usage);
  } catch {
    return '';
  }
}
