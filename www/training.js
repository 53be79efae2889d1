// Training: the page's lock, the training form, a run with its progress
// and charts, each step saved, the history library update after a run, and
// what changed (before/after figures, verdicts honored).

import { LineChart } from './plot.js';
import { state, $, ui, images, runs } from './state.js';
import { setPhase, showError, setStatus, idleStatus } from './messages.js';
import { withSession, refreshStats } from './session.js';
import { className, shownOf, verdictsOf, updateUndoButtons } from './verdicts.js';
import { renderAll, select } from './image-list.js';
import { startPredictLoop, stopPredictLoop } from './predictions.js';
import { persist } from './page-project.js';

/** How many times training got past its options' check (the body's `data-train-attempts`, for tests). */
let trainAttempts = 0;

/** Why `count` training steps changed nothing, and what to do about it. */
function skippedSteps(count) {
  return `${count} step${count === 1 ? ' was' : 's were'} skipped because the loss or a gradient was not a finite number; ` +
    'the weights from before each were kept. If it happens often, lower the learning rate.';
}

/** The training charts: loss, similarity and the mix weights of each step. */
export const charts = {
  loss: new LineChart(
    $('plot-loss'),
    [
      { label: 'transfer loss', color: '#2563eb' },
      { label: 'history loss', color: '#dc2626', dash: [4, 2] },
    ],
    { title: 'Loss', yMin: 0 },
  ),
  similarity: new LineChart($('plot-similarity'), [{ label: 's', color: '#7c3aed' }], {
    title: 'Similarity s',
    yMin: -1,
    yMax: 1,
  }),
  weights: new LineChart(
    $('plot-weights'),
    [
      { label: 'a_t', color: '#2563eb' },
      { label: 'a_h', color: '#dc2626', dash: [4, 2] },
    ],
    { title: 'Weights', yMin: 0, yMax: 1 },
  ),
};

/**
 * Adds a training step's record (as the wasm module gives it) to the charts.
 * Projects saved before the module gave camelCase names kept the crate's
 * snake_case ones: those still draw.
 */
export function chartStep(record) {
  const r = record || {};
  const mix = r.mix || {};
  charts.loss.push(r.transferLoss ?? r.transfer_loss, r.historyLoss ?? r.history_loss);
  charts.similarity.push(mix.similarity);
  charts.weights.push(mix.aT ?? mix.a_t, mix.aH ?? mix.a_h);
}

/** Locks or unlocks edits and tasks (locked while starting or training; for good after a crash). */
export function setLocked(value) {
  state.locked = value || Boolean(state.crashMessage);
  value = state.locked;
  ui.threshold.disabled = value;
  ui.fileInput.disabled = value;
  ui.folderInput.disabled = value;
  ui.train.disabled = value || !state.session;
  ui.exportButton.disabled = value || !state.session;
  ui.statusCancel.disabled = Boolean(state.crashMessage);
  ui.epochs.disabled = value;
  ui.untilHonored.disabled = value;
  ui.rule.disabled = value;
  ui.batchSize.disabled = value;
  ui.learningRate.disabled = value;
  ui.updateHistory.disabled = value;
  ui.freezeBackbone.disabled = value;
  ui.modelChoice.disabled = value;
  ui.exportProject.disabled = value || !state.session;
  ui.weightsInput.disabled = value || !state.session;
  ui.exportLabels.disabled = value || !state.session;
  ui.labelsInput.disabled = value;
  ui.labelsFolderInput.disabled = value;
  updateUndoButtons();
  renderAll();
}

function formatSeconds(s) {
  if (!Number.isFinite(s)) return '…';
  if (s < 60) return `${Math.max(0, Math.round(s))} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

/** Whether the model can train with a frozen backbone (NanoDet; the digits detector always trains whole). */
export function hasBackboneChoice() {
  return Boolean(state.model && state.model.freezableBackbone);
}

/**
 * The training form as the wasm module takes it; the module fills in the
 * detector's defaults and checks the ranges (its sentence reaches the user).
 */
function readTrainOptions() {
  const whole = (el, what) => {
    const value = Number(el.value);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${what} must be a whole number, such as ${el.defaultValue}.`);
    return value;
  };
  const epochs = whole(ui.epochs, 'Epochs');
  const batchSize = whole(ui.batchSize, 'The batch size');
  const learningRate = Number(ui.learningRate.value);
  if (ui.learningRate.value.trim() === '' || !Number.isFinite(learningRate)) throw new Error('The learning rate must be a number, such as 0.001.');
  return {
    epochs,
    untilHonored: ui.untilHonored.checked,
    threshold: state.threshold,
    rule: ui.rule.value,
    batchSize,
    learningRate,
    freezeBackbone: hasBackboneChoice() && ui.freezeBackbone.checked,
  };
}

function figures(entries, which) {
  const perImage = [];
  for (const e of entries) {
    const pred = which(e);
    if (!pred || !e.base) continue;
    // The verdicts checked by the crate's rule (`checkVerdicts`), as the fidelity summary.
    const checks = Array.from(state.wasm.checkVerdicts(verdictsOf(e), pred.candidates, state.threshold));
    const kept = checks.filter((c) => c.asked !== 'rejected');
    const rejected = checks.filter((c) => c.asked === 'rejected');
    perImage.push({
      id: e.id,
      name: e.name,
      reviewed: e.inSession,
      shown: shownOf(e, pred.candidates).length,
      userBoxes: kept.length,
      matching: kept.filter((c) => c.honored).length,
      rejected: rejected.length,
      rejectedShown: rejected.filter((c) => !c.honored).length,
    });
  }
  const sum = (k) => perImage.reduce((a, r) => a + r[k], 0);
  return {
    threshold: state.threshold,
    images: perImage.length,
    shown: sum('shown'),
    userBoxes: sum('userBoxes'),
    matching: sum('matching'),
    rejected: sum('rejected'),
    rejectedShown: sum('rejectedShown'),
    perImage,
  };
}

/** Trains on the reviewed images with the form's options, then predicts every image again and shows what changed. */
export async function train() {
  if (state.training || !state.session || state.crashMessage) return;
  let options;
  try {
    options = readTrainOptions();
    await withSession((s) => s.trainSettings(options));
  } catch (e) {
    showError('Cannot train', e);
    return;
  }
  state.training = true;
  setPhase('training');
  setLocked(true);
  ui.cancelTrain.disabled = true;
  ui.trainStatus.textContent = 'Preparing…';
  try {
    await stopPredictLoop();
    await state.historyReady;
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    const stats = await withSession((s) => s.stats());
    if (!stats.samples) {
      showError(
        'Nothing to train on yet: judge every box on at least one image (Confirm all is the quick way) or draw a missed box',
      );
      ui.trainStatus.textContent = 'Not trained: no reviewed image.';
      return;
    }
    // The engine this run trains on: a lost GPU replaces the session during the run.
    const engine = state.session;
    const run = {
      index: runs.length + 1,
      ...options,
      backend: state.facts.backend,
      threshold: state.threshold,
      startedAt: new Date().toISOString(),
      samples: stats,
      records: [],
      cancelled: false,
      seconds: 0,
      before: figures(images, (e) => e.latest),
      after: null,
      epochChecks: [],
      historyKept: null,
    };
    for (const c of Object.values(charts)) c.clear();
    ui.trainProgress.value = 0;
    ui.trainProgress.max = 1;
    const t0 = performance.now();
    ui.cancelTrain.disabled = false;
    setStatus(`Training with the ${options.rule} rule…`);
    ui.trainStatus.textContent = options.untilHonored
      ? `Starting: at most ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} on ${stats.samples} image${stats.samples === 1 ? '' : 's'}, until every verdict is honored…`
      : `Starting ${options.epochs} epoch${options.epochs === 1 ? '' : 's'} on ${stats.samples} image${stats.samples === 1 ? '' : 's'}…`;
    let skipped = 0;
    let stepStart = t0;
    const onStep = (record, done, total, weights, check) => {
      const now = performance.now();
      // Milliseconds of this step as the page saw it (the first includes compiling kernels).
      if (record) record.ms = Math.round(now - stepStart);
      stepStart = now;
      run.records.push(record);
      if (record && record.skipped) skipped += 1;
      const elapsed = (performance.now() - t0) / 1000;
      const left = done > 0 ? (elapsed / done) * (total - done) : NaN;
      const perEpoch = total / options.epochs;
      const epoch = Math.min(options.epochs, Math.max(1, Math.ceil(done / perEpoch)));
      ui.trainProgress.max = total;
      ui.trainProgress.value = done;
      ui.trainProgress.setAttribute('aria-valuetext', `step ${done} of ${total}`);
      if (check) run.epochChecks.push(check);
      const last = run.epochChecks[run.epochChecks.length - 1];
      ui.trainStatus.textContent =
        (options.untilHonored
          ? `Step ${done} of at most ${total} · epoch ${epoch} of at most ${options.epochs} · ` +
            (last ? `${honoredText(last.verdictsHonored)} after epoch ${last.epochs} · ` : '') +
            `at most about ${formatSeconds(left)} left`
          : `Step ${done} of ${total} · epoch ${epoch} of ${options.epochs} · about ${formatSeconds(left)} left`) +
        (skipped ? ` · ${skipped} skipped` : '');
      if (weights) checkpoint(run, weights, total);
      chartStep(record);
    };
    let result;
    try {
      // With a project, every completed step is saved (a closed tab resumes from it).
      result = await withSession((s) => s.train({ ...options, checkpoint: Boolean(state.project) }, onStep));
    } catch (e) {
      if (!(run.backend === 'webgpu' && (await engine.deviceLostWithin(1000)))) showError('Training failed', e);
      ui.trainStatus.textContent = `Training failed after ${run.records.length} step${run.records.length === 1 ? '' : 's'}.`;
      result = null;
    }
    ui.cancelTrain.disabled = true;
    run.seconds = (performance.now() - t0) / 1000;
    if (result) {
      run.cancelled = Boolean(result.cancelled);
      if (Array.isArray(result.records) && result.records.length > run.records.length) run.records = result.records;
      if (Array.isArray(result.epochChecks)) run.epochChecks = result.epochChecks;
      const last = run.epochChecks[run.epochChecks.length - 1];
      const reached = !run.cancelled && last && last.verdictsHonored.passed === last.verdictsHonored.total;
      ui.trainStatus.textContent =
        `${run.cancelled ? 'Cancelled' : 'Finished'}: ${run.records.length} step${run.records.length === 1 ? '' : 's'} in ${formatSeconds(run.seconds)}` +
        (reached ? `, every verdict honored after epoch ${last.epochs}.` : '.');
      const skippedInRun = run.records.filter((r) => r && r.skipped).length;
      if (skippedInRun) ui.trainStatus.textContent += ` ${skippedSteps(skippedInRun)}`;
    }
    if (!run.records.length || state.crashMessage) return;
    if (run.backend === 'webgpu' && (state.gpuLost || (!result && (await engine.deviceLostWithin(1000))))) {
      if (run.checkpointed) runs.push(run);
      ui.trainStatus.textContent = run.checkpointed
        ? `Stopped: the GPU was lost. The weights after step ${run.checkpointed} (the last completed step) are kept.`
        : 'Stopped: the GPU was lost. Nothing of this run was kept; the weights are those of the last finished run.';
      return;
    }
    runs.push(run);
    if (!run.checkpointed) state.weightsVersion += 1;
    run.interrupted = false;
    await saveTraining(run);
    if (result && !run.cancelled && ui.updateHistory.checked) await updateHistory(run);
    // The weights changed: predict every image again and show what changed.
    for (const e of images) if (e.latest) e.stale = true;
    state.training = false;
    setPhase('repredicting');
    setLocked(false);
    const pass = await startPredictLoop('Predicting again with the adapted model');
    run.after = figures(images.filter((e) => !e.stale), (e) => e.latest);
    run.historyKept = await historyKept();
    if (state.project) state.project.saveRun(run);
    showChanges(run, pass.cancelled);
    ui.trainStatus.textContent += pass.cancelled ? ' Predicting again was stopped.' : ' Images predicted again.';
  } catch (e) {
    showError('Training could not run', e);
  } finally {
    state.training = false;
    trainAttempts += 1;
    document.body.dataset.trainAttempts = String(trainAttempts);
    setPhase('ready');
    setLocked(false);
    ui.cancelTrain.disabled = true;
    idleStatus();
  }
}

/**
 * After each completed step of a run (`bytes`: the weights then): they become
 * the weights a lost GPU goes on from, and the project saves them with the
 * run's records so far, marked interrupted until the run ends, so a closed
 * tab resumes from the last completed step. A `veritune:checkpoint` event
 * on the document (detail: `{step}`) says when a step is saved.
 */
function checkpoint(run, bytes, total) {
  state.currentWeights = bytes;
  if (!state.project) return;
  if (!run.checkpointed) state.weightsVersion += 1;
  run.checkpointed = run.records.length;
  run.interrupted = true;
  run.totalSteps = total;
  state.project.record.weightsVersion = state.weightsVersion;
  state.project.saveWeights(bytes);
  state.project.saveRun({ ...run, records: [...run.records] });
  persist();
}

/** Keeps the weights after a run (the session's current weights) and saves them and the run's records in the project. */
async function saveTraining(run) {
  try {
    const bytes = await withSession((s) => s.exportWeights());
    state.currentWeights = bytes;
    if (!state.project) return;
    state.project.saveWeights(bytes);
    state.project.record.weights = { bytes: bytes.length, savedAt: new Date().toISOString() };
    state.project.record.weightsVersion = state.weightsVersion;
    state.project.saveRun(run);
    persist();
  } catch (e) {
    showError('The trained weights could not be read to save them in the project', e);
  }
}

/** Asks the session to stop training after the current step. */
export function cancelTraining() {
  if (!state.training || !state.session) return;
  try {
    state.session.cancel();
    ui.cancelTrain.disabled = true;
    ui.trainStatus.textContent = 'Cancelling after the current step…';
  } catch (e) {
    showError('Could not cancel training', e);
  }
}

/** Shows what a run changed: the before/after figures per image and the verdicts honored. */
export function showChanges(run, partial) {
  const before = new Map(run.before.perImage.map((r) => [r.id, r]));
  const rows = run.after.perImage.filter((r) => before.has(r.id));
  const b = { shown: 0, matching: 0, rejectedShown: 0 };
  const a = { shown: 0, matching: 0, rejectedShown: 0, userBoxes: 0, rejected: 0 };
  ui.changesBody.replaceChildren();
  for (const r of rows) {
    const p = before.get(r.id);
    for (const k of Object.keys(b)) b[k] += p[k];
    for (const k of Object.keys(a)) a[k] += r[k];
    ui.changesBody.append(changeRow(r.name, p, r));
  }
  let foot = ui.changesTable.querySelector('tfoot');
  if (!foot) {
    foot = document.createElement('tfoot');
    ui.changesTable.append(foot);
  }
  foot.replaceChildren(changeRow('All images', b, a));
  ui.changesSummary.textContent =
    `Run ${run.index} (${run.rule}, ${run.records.length} steps${run.cancelled ? ', cancelled' : ''}): ` +
    `boxes shown ${b.shown} → ${a.shown}; boxes matching your verdicts ${b.matching} → ${a.matching} of ${a.userBoxes}; ` +
    `rejected boxes still shown ${b.rejectedShown} → ${a.rejectedShown} of ${a.rejected}.` +
    (partial ? ' Some images were not predicted again.' : '');
  showFidelity(run);
  ui.changesPanel.hidden = false;
  ui.changesPanel.scrollIntoView({ block: 'nearest' });
  renderAll();
}

const ASKED = {
  confirmed: 'confirmed box not shown',
  corrected: 'corrected box not shown',
  rejected: 'rejected box still shown',
  drawn: 'drawn box not shown',
};

/** "5 of 7 verdicts honored", or "All 7 verdicts honored". */
function honoredText({ passed, total }) {
  return passed === total ? `All ${total} verdict${total === 1 ? '' : 's'} honored` : `${passed} of ${total} verdicts honored`;
}

/**
 * History agreement after a run (`{passed, total}`: the history library's
 * boxes the model still shows, as the session measures it), or null without
 * a history library or when it cannot be measured.
 */
async function historyKept() {
  if (!state.session || state.crashMessage) return null;
  try {
    const stats = await withSession((s) => s.stats());
    if (!stats.history) return null;
    setStatus('Checking the history library with the adapted model…');
    return await withSession((s) => s.historyAgreement(state.threshold));
  } catch (e) {
    showError('The history library could not be checked', e);
    return null;
  }
}

/**
 * "7 of 8 verdicts honored, history kept 96 %" over the images trained on,
 * as the crate's fidelity rule decides on their predictions after `run`, and
 * a button per verdict not honored yet that opens its image with the box
 * selected.
 */
function showFidelity(run) {
  const missed = [];
  let honored = 0;
  let total = 0;
  for (const entry of images) {
    if (!entry.inSession || !entry.latest || entry.stale) continue;
    const shown = shownOf(entry);
    for (const check of state.wasm.checkVerdicts(verdictsOf(entry), entry.latest.candidates, state.threshold)) {
      total += 1;
      if (check.honored) {
        honored += 1;
      } else {
        const box = check.asked === 'drawn' ? { kind: 'drawn', index: check.index } : { kind: 'shown', index: shown[check.index] };
        missed.push({ entry, check, box });
      }
    }
  }
  const kept = run.historyKept;
  ui.fidelitySummary.textContent =
    honoredText({ passed: honored, total }) +
    (kept && kept.total ? `, history kept ${Math.round((100 * kept.passed) / kept.total)} %` : '') +
    (missed.length
      ? '. Not honored yet (train again to go on from here, raise Epochs, or raise the learning rate under Advanced):'
      : '.');
  ui.notHonored.replaceChildren(
    ...missed.map(({ entry, check, box }) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `${entry.name}: ${ASKED[check.asked]} (${className(check.label.class)})`;
      button.addEventListener('click', async () => {
        await select(images.indexOf(entry));
        state.view = 'review';
        document.querySelector('input[name="view"][value="review"]').checked = true;
        state.selection = box;
        renderAll();
      });
      li.append(button);
      return li;
    }),
  );
}

function changeRow(name, p, r) {
  const tr = document.createElement('tr');
  const cells = [
    [name, null],
    [`${p.shown} → ${r.shown}`, null],
    [`${p.matching} → ${r.matching} / ${r.userBoxes}`, Math.sign(r.matching - p.matching)],
    [`${p.rejectedShown} → ${r.rejectedShown} / ${r.rejected}`, -Math.sign(r.rejectedShown - p.rejectedShown)],
  ];
  cells.forEach(([text, better], k) => {
    const td = document.createElement(k === 0 ? 'th' : 'td');
    if (k === 0) {
      td.scope = 'row';
      td.title = name;
    }
    td.textContent = text;
    if (better > 0) td.className = 'better';
    if (better < 0) td.className = 'worse';
    tr.append(td);
  });
  return tr;
}

/**
 * After a finished run the history library is updated (METHOD.md section 3):
 * the reviewed images compete with its members by per-sample gradients, and
 * the project keeps the members' names so a reload restores the library.
 * Not after a cancelled run: cancelling asks for the page back now, while
 * the update computes a gradient per sample; the images compete after the
 * next finished run.
 */
async function updateHistory(run) {
  const finished = ui.trainStatus.textContent;
  ui.trainStatus.textContent = `${finished} Updating the history library…`;
  try {
    const update = await withSession((s) =>
      s.updateHistory((done, total) => {
        setStatus(`Updating the history library: gradient ${done} of ${total}`, { progress: done / total });
        ui.trainStatus.textContent = `${finished} Updating the history library: gradient ${done} of ${total}…`;
      }),
    );
    run.history = { offered: update.offered, admitted: update.admitted.length, evicted: update.evicted.length, size: update.members.length };
    const h = run.history;
    ui.trainStatus.textContent =
      `${finished} History library: ${h.admitted} of ${h.offered} reviewed image${h.offered === 1 ? '' : 's'} admitted, ` +
      `${h.evicted} evicted, ${h.size} samples.`;
    if (state.project) {
      state.project.saveProject({ history: update.members });
      state.project.saveRun(run);
    }
    await refreshStats();
  } catch (e) {
    ui.trainStatus.textContent = `${finished} The history library was not updated.`;
    showError('The history library could not be updated (it stays as it was)', e);
  }
}
