// The project open in this tab: choosing it at start, saving it after
// every change, putting a resumed one back on the page, the Projects dialog,
// another model (a new project).

import { openStore, Store, imageRecord, isQuotaError, storageUse } from './project.js';
import { showProjects } from './projects-dialog.js';
import { state, params, ui, images, runs } from './state.js';
import { setPhase, messageOf, showError, setStatus } from './messages.js';
import { isReviewed, scheduleSync, setTargetClasses } from './verdicts.js';
import { addImage, select } from './image-list.js';
import { charts, chartStep, showChanges } from './training.js';

/** sessionStorage key: the project to open after a reload (an id or 'new'). */
const OPEN_KEY = 'veritune.open';

/** What the Projects dialog says about this project without loading it. */
function summary() {
  return {
    images: images.length,
    reviewed: images.filter(isReviewed).length,
    runs: runs.length,
    bytes:
      images.reduce((a, e) => a + (e.file ? e.file.size : 0), 0) + ((state.project && state.project.record.weights && state.project.record.weights.bytes) || 0),
  };
}

/** The settings saved with the project. */
export function settings() {
  return {
    threshold: state.threshold,
    rule: ui.rule.value,
    epochs: ui.epochs.value,
    untilHonored: ui.untilHonored.checked,
    batchSize: ui.batchSize.value,
    learningRate: ui.learningRate.value,
    updateHistory: ui.updateHistory.checked,
    freezeBackbone: ui.freezeBackbone.checked,
    drawClass: ui.drawClass.value,
    targetClasses: state.targetClasses && state.targetClasses.map((c) => state.classNames[c]),
    weightsFormat: ui.weightsFormat.value,
    labelFormat: ui.labelFormat.value,
  };
}

/** Saves the project record, and `entry`'s record (with its bytes when `withFile`). */
export function persist(entry = null, withFile = false) {
  if (!state.project) return;
  state.project.record.summary = summary();
  state.project.record.nextId = state.nextId;
  state.project.record.settings = settings();
  state.project.record.current = images[state.current] ? images[state.current].id : null;
  if (entry) state.project.saveImage(imageRecord(state.project.id, entry, images.indexOf(entry)), withFile ? entry.file : null);
  else state.project.saveProject();
}

/** Whether a failure to save has been said (once, until saving works again). */
let saveProblemShown = false;

/** Shows whether everything is saved; a failure is said once, in a sentence, until saving works again. */
export async function onSaveState(saveState, error) {
  document.body.dataset.save = saveState;
  ui.saveState.dataset.state = saveState;
  ui.saveState.disabled = saveState !== 'failed';
  if (saveState === 'saving') {
    ui.saveState.textContent = 'Saving…';
    ui.saveState.title = 'Saving the project in this browser';
  } else if (saveState === 'saved') {
    ui.saveState.textContent = 'Saved';
    ui.saveState.title = `Everything is saved in this browser (project “${state.project ? state.project.record.name : ''}”)`;
    if (saveProblemShown) {
      saveProblemShown = false;
      setStatus('Saving works again: the project is saved.');
    }
  } else if (saveState === 'failed') {
    ui.saveState.textContent = 'Not saved: retry';
    ui.saveState.title = 'The last changes are only in this tab. Press to try saving again.';
    if (!saveProblemShown) {
      saveProblemShown = true;
      if (isQuotaError(error)) {
        const use = await storageUse();
        showError(
          `The browser's storage for this page is full${use ? ` (${use} used)` : ''}: your latest changes are kept in this tab but not saved. ` +
            'Delete projects you no longer need (Projects, at the top) or download this project as a file (Export); saving is tried again with your next change or when you press “Not saved: retry”.',
        );
      } else {
        showError(
          `The project could not be saved (${messageOf(error).replace(/[.\s]+$/, '')}): your latest changes are kept in this tab but not saved; saving is tried again with your next change`,
        );
      }
    }
  }
}

/** The open project's name at the top and in the tab's title. */
export function showProjectName() {
  const name = state.project ? state.project.record.name : 'not saved';
  ui.projectName.textContent = name;
  document.title = state.project ? `${name} · veritune` : 'veritune: fine-tune a detector with your verdicts';
}

/**
 * Which project this tab works on: the one asked for by a reload
 * (sessionStorage) or ?project=, else the user's choice in the Projects
 * dialog when there are saved projects, else a new one. Returns
 * {record, isNew}, or null when this browser cannot save projects.
 */
export async function chooseProject() {
  try {
    state.store = await openStore();
  } catch (e) {
    showError(messageOf(e));
    return null;
  }
  let wanted = sessionStorage.getItem(OPEN_KEY) || params.get('project');
  sessionStorage.removeItem(OPEN_KEY);
  if (params.has('project')) {
    const url = new URL(location.href);
    url.searchParams.delete('project');
    history.replaceState(null, '', url);
  }
  for (;;) {
    const list = await state.store.list();
    if (!wanted) {
      const open = await Store.openIds();
      if (!list.some((p) => !open.has(p.id))) {
        // Nothing to resume here (no project, or every one is open in another tab).
        wanted = 'new';
      } else {
        setPhase('choosing');
        setStatus('Choose a project to continue.');
        const choice = await showProjects({ store: state.store, atStart: true });
        wanted = choice.action === 'new' ? 'new' : choice.id;
        setPhase('starting');
      }
    }
    if (wanted === 'last') {
      const open = await Store.openIds();
      const last = list.find((p) => !open.has(p.id));
      wanted = last ? last.id : 'new';
    }
    let record;
    const isNew = wanted === 'new';
    if (isNew) {
      record = await state.store.create();
    } else {
      record = await state.store.get(wanted);
      if (!record) {
        showError('The project to open no longer exists in this browser; choose another');
        wanted = null;
        continue;
      }
    }
    if (!(await Store.lock(record.id))) {
      showError(`“${record.name}” is open in another tab of this browser; use that tab or choose another project here`);
      wanted = null;
      continue;
    }
    record.openedAt = new Date().toISOString();
    return { record, isNew };
  }
}

/** The Projects button: open another project, a new or imported one (the page reloads into it). */
export async function openProjectsDialog() {
  if (!state.store) {
    showError('Projects cannot be saved in this browser, so there is no list of projects');
    return;
  }
  const choice = await showProjects({ store: state.store, currentId: state.project ? state.project.id : null, busy: state.locked });
  if (choice.action === 'close') {
    ui.projectsButton.focus();
    return;
  }
  if (state.project) await state.project.flush();
  sessionStorage.setItem(OPEN_KEY, choice.action === 'new' ? 'new' : choice.id);
  location.reload();
}

/** Puts a resumed project's images, verdicts, settings and training runs back on the page. */
export async function restoreProject(weightsLoaded) {
  const [records, runRecords] = await Promise.all([state.store.images(state.project.id), state.store.runs(state.project.id)]);
  for (const r of runRecords) {
    const { projectId, ...run } = r;
    runs.push(run);
  }
  // Saved weights that could not be loaded are a change of weights: no saved
  // prediction is current.
  state.weightsVersion = (state.project.record.weightsVersion ?? runs.length) + (weightsLoaded ? 0 : 1);
  const missing = [];
  for (let k = 0; k < records.length; k++) {
    const r = records[k];
    setStatus(`Opening image ${k + 1} of ${records.length} of “${state.project.record.name}”: ${r.name}`, { progress: k / records.length });
    try {
      const file = await state.store.readImage(state.project.id, r.id);
      if (!file) {
        missing.push(r.name);
        continue;
      }
      await addImage(file, r.name, r.source, r);
      const n = Number(String(r.id).replace(/^img-/, ''));
      if (Number.isInteger(n) && n >= state.nextId) state.nextId = n + 1;
    } catch (e) {
      showError(`“${r.name}” of this project could not be opened`, e);
    }
  }
  if (missing.length) {
    showError(`${missing.length} image${missing.length === 1 ? ' is' : 's are'} missing from the saved project (first: “${missing[0]}”); the rest is here`);
  }
  const last = runs.at(-1);
  if (last) {
    for (const c of Object.values(charts)) c.clear();
    for (const rec of last.records || []) chartStep(rec);
    const steps = (last.records || []).length;
    ui.trainStatus.textContent = last.interrupted
      ? `Run ${last.index} stopped after step ${steps} of ${last.totalSteps ?? '?'} (the page was closed or lost its GPU); the weights after that step are kept.`
      : `Run ${last.index} (saved): ${last.cancelled ? 'cancelled after ' : ''}${steps} steps with the ${last.rule} rule.`;
    if (last.after) showChanges(last, false);
  }
  const at = images.findIndex((e) => e.id === state.project.record.current);
  // The saved prediction shows at once; the current model predicts again in the background.
  select(at >= 0 ? at : 0);
  // The reviewed images go back into the session (the counters follow).
  for (const e of images) if (isReviewed(e)) scheduleSync(e);
}

/** Another model: a new project with it (the current one stays in Projects); the page reloads. */
export async function switchModel(id) {
  if (state.project) await state.project.flush();
  if (state.store) sessionStorage.setItem(OPEN_KEY, 'new');
  const url = new URL(location.href);
  url.searchParams.set('model', id);
  location.assign(url);
}

/** Puts saved settings back on the controls before the images come back. */
export function applySettings(saved = {}) {
  const set = (el, v) => {
    if (v !== undefined && v !== null && v !== '') el.value = String(v);
  };
  if (Number.isFinite(Number(saved.threshold)) && saved.threshold !== undefined) {
    ui.threshold.value = String(saved.threshold);
    state.threshold = Number(ui.threshold.value);
    ui.thresholdValue.textContent = state.threshold.toFixed(2);
  }
  if ([...ui.rule.options].some((o) => o.value === saved.rule)) ui.rule.value = saved.rule;
  set(ui.epochs, saved.epochs);
  if (typeof saved.untilHonored === 'boolean') ui.untilHonored.checked = saved.untilHonored;
  set(ui.batchSize, saved.batchSize);
  set(ui.learningRate, saved.learningRate);
  if (typeof saved.updateHistory === 'boolean') ui.updateHistory.checked = saved.updateHistory;
  if (typeof saved.freezeBackbone === 'boolean') ui.freezeBackbone.checked = saved.freezeBackbone;
  if (Array.isArray(saved.targetClasses)) {
    setTargetClasses(saved.targetClasses.map((n) => state.classNames.indexOf(String(n))).filter((c) => c >= 0));
  }
  if (saved.drawClass !== undefined && Number(saved.drawClass) < state.classNames.length) ui.drawClass.value = String(saved.drawClass);
  for (const [el, v] of [
    [ui.weightsFormat, saved.weightsFormat],
    [ui.labelFormat, saved.labelFormat],
  ]) {
    if ([...el.options].some((o) => o.value === v)) el.value = v;
  }
}
