// veritune's page: open images, judge the detector's boxes, train in the tab,
// download the adapted weights. Everything stays on this machine.
//
// URL flags: ?backend=cpu asks the session for the CPU backend;
// ?project=new|last|<id> opens that project without asking (the flag is then
// removed from the address, so a reload asks again); ?model=<id> (an id of
// models.json) is the model of a new project.
//
// This module starts the page and wires its controls; each concern is a
// module of its own (ARCHITECTURE.md, "The page").

import { filesFromDrop } from './images.js';
import { webgpuProblem } from './webgpu.js';
import { OpenProject } from './project.js';
import { renderShortcuts } from './shortcuts.js';
import { state, PREFER_WEBGPU, ASSETS, $, ui, images } from './state.js';
import { setPhase, messageOf, showError, setStatus, idleStatus } from './messages.js';
import { withSession, refreshStats, startEngine, loadWeights, showBackend } from './session.js';
import { shownOf, isReviewed, userBoxes, scheduleSync, confirmAll, undoRedo, boxOf, rereview, classPicker, setTargetClasses } from './verdicts.js';
import { updateAllThumbs, openFiles, renderAll, select } from './image-list.js';
import { startPredictLoop } from './predictions.js';
import { zoomBy, zoomFit, toScreen, renderCanvas, onPointerDown, onPointerMove, onPointerUp, onWheel } from './canvas.js';
import { charts, setLocked, train, cancelTraining } from './training.js';
import { exportAll, exportLabels, importLabels, exportProject } from './export.js';
import { persist, onSaveState, showProjectName, chooseProject, openProjectsDialog, restoreProject, switchModel, applySettings } from './page-project.js';
import { chooseModel, applyTrainDefaults, fetchBytes, loadTransferSamples, startHistoryLoad } from './startup.js';
import { showShortcuts, onKeyDown } from './keyboard.js';

function wireUi() {
  ui.weightsInput.addEventListener('change', () => {
    const [file] = ui.weightsInput.files;
    ui.weightsInput.value = '';
    if (file) loadWeights(file);
  });
  ui.fileInput.addEventListener('change', () => {
    const files = ui.fileInput.files;
    openFiles(files).finally(() => (ui.fileInput.value = ''));
  });
  ui.folderInput.addEventListener('change', () => {
    const files = ui.folderInput.files;
    openFiles(files).finally(() => (ui.folderInput.value = ''));
  });
  const ws = ui.workspace;
  ws.addEventListener('dragover', (ev) => {
    if (!ev.dataTransfer || ![...ev.dataTransfer.types].includes('Files')) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = state.locked ? 'none' : 'copy';
    ws.classList.add('dragover');
  });
  ws.addEventListener('dragleave', (ev) => {
    if (!ws.contains(ev.relatedTarget)) ws.classList.remove('dragover');
  });
  ws.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    ws.classList.remove('dragover');
    try {
      const { files } = await filesFromDrop(ev.dataTransfer);
      await openFiles(files);
    } catch (e) {
      showError('The dropped files could not be read', e);
    }
  });
  // Files dropped outside the workspace must not navigate away from the page.
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());

  ui.threshold.addEventListener('input', () => {
    state.threshold = Number(ui.threshold.value);
    ui.thresholdValue.textContent = state.threshold.toFixed(2);
    const entry = images[state.current];
    if (state.selection && state.selection.kind === 'shown' && entry && !shownOf(entry).includes(state.selection.index)) state.selection = null;
    updateAllThumbs();
    renderAll();
  });
  ui.modelChoice.addEventListener('change', () => switchModel(ui.modelChoice.value));
  ui.threshold.addEventListener('change', () => {
    for (const e of images) if (e.base && (e.inSession || isReviewed(e))) scheduleSync(e);
    persist();
  });
  for (const el of [ui.rule, ui.epochs, ui.untilHonored, ui.batchSize, ui.learningRate, ui.updateHistory, ui.freezeBackbone, ui.drawClass, ui.weightsFormat, ui.labelFormat]) {
    el.addEventListener('change', () => persist());
  }
  ui.projectsButton.addEventListener('click', openProjectsDialog);
  ui.saveState.addEventListener('click', () => state.project && state.project.flush());
  document.addEventListener('veritune:renamed', (ev) => {
    if (!state.project) return;
    state.project.saveProject({ name: ev.detail });
    showProjectName();
  });
  renderShortcuts($('shortcuts-list'));
  ui.shortcutsButton.addEventListener('click', showShortcuts);
  ui.undo.addEventListener('click', () => undoRedo('undo'));
  ui.redo.addEventListener('click', () => undoRedo('redo'));
  ui.zoomIn.addEventListener('click', () => zoomBy(1.5));
  ui.zoomOut.addEventListener('click', () => zoomBy(1 / 1.5));
  ui.zoomFit.addEventListener('click', zoomFit);
  ui.exportProject.addEventListener('click', exportProject);
  ui.exportLabels.addEventListener('click', exportLabels);
  for (const [input, fromFolder] of [
    [ui.labelsInput, false],
    [ui.labelsFolderInput, true],
  ]) {
    input.addEventListener('change', () => {
      const files = input.files;
      importLabels(files, fromFolder).finally(() => (input.value = ''));
    });
  }
  for (const r of document.querySelectorAll('input[name="mode"]')) {
    r.addEventListener('change', () => {
      state.mode = r.value;
      renderCanvas();
    });
  }
  for (const r of document.querySelectorAll('input[name="view"]')) {
    r.addEventListener('change', () => {
      state.view = r.value;
      state.selection = null;
      renderAll();
    });
  }
  ui.prev.addEventListener('click', () => select(state.current - 1));
  ui.next.addEventListener('click', () => select(state.current + 1));
  ui.confirmAll.addEventListener('click', confirmAll);
  ui.rereview.addEventListener('click', rereview);
  ui.train.addEventListener('click', train);
  ui.cancelTrain.addEventListener('click', cancelTraining);
  ui.exportButton.addEventListener('click', exportAll);
  ui.canvas.addEventListener('pointerdown', onPointerDown);
  ui.canvas.addEventListener('pointermove', onPointerMove);
  ui.canvas.addEventListener('pointerup', onPointerUp);
  ui.canvas.addEventListener('wheel', onWheel, { passive: false });
  // No autoscroll on a middle-button press: it pans.
  ui.canvas.addEventListener('mousedown', (ev) => {
    if (ev.button === 1) ev.preventDefault();
  });
  ui.canvas.addEventListener('pointercancel', () => {
    state.drag = null;
    renderCanvas();
  });
  new ResizeObserver(() => {
    renderCanvas();
    for (const c of Object.values(charts)) c.draw();
  }).observe(ui.canvasWrap);

  document.addEventListener('keydown', onKeyDown);
  document.addEventListener('keyup', (ev) => {
    if (ev.key === ' ' && state.spaceHeld) {
      state.spaceHeld = false;
      renderCanvas();
    }
  });
  window.addEventListener('blur', () => {
    state.spaceHeld = false;
  });
}

async function start() {
  document.body.dataset.phase = 'starting';
  wireUi();
  setLocked(true);
  renderAll();
  try {
    setStatus('Loading the detector…', { progress: 0 });
    let mod;
    try {
      mod = await import(ASSETS.pkg);
      await mod.default();
      if (typeof mod.installPanicHook === 'function') mod.installPanicHook();
      state.wasm = mod;
    } catch (e) {
      throw new Error(`The detector's WebAssembly module (${ASSETS.pkg}) could not be loaded: ${messageOf(e)}`);
    }
    const chosen = await chooseProject();
    await chooseModel(chosen);
    if (chosen) {
      state.project = new OpenProject(state.store, { ...chosen.record, model: state.model.id }, onSaveState);
      state.project.onRunWritten = (run) => {
        if (run.interrupted) document.dispatchEvent(new CustomEvent('veritune:checkpoint', { detail: { step: run.checkpointed } }));
      };
      state.project.saveProject();
    }
    showProjectName();
    // A project that has trained goes on from its saved weights.
    let bytes = null;
    if (chosen && chosen.record.weights) {
      setStatus(`Loading the trained weights of “${chosen.record.name}”…`);
      bytes = await state.store.readWeights(chosen.record.id).catch((e) => {
        showError(`The saved weights of “${chosen.record.name}” could not be read (${messageOf(e)}); it goes on from the default model`);
        return null;
      });
    }
    const fromProject = Boolean(bytes);
    if (!bytes) {
      bytes = await fetchBytes(ASSETS.model, 'the detector model', (f) =>
        setStatus(`Loading the detector model… ${Math.round(f * 100)} %`, { progress: f }),
      );
    }
    setStatus(PREFER_WEBGPU ? 'Starting the detector (WebGPU if available)…' : 'Starting the detector on the CPU…');
    let problem = '';
    if (PREFER_WEBGPU) problem = await webgpuProblem().catch((e) => `WebGPU could not be queried (${messageOf(e)})`);
    try {
      state.session = await startEngine(bytes, PREFER_WEBGPU && !problem);
    } catch (e) {
      if (!fromProject) throw new Error(`The detector could not start: ${messageOf(e)}`);
      showError(`The saved weights of “${chosen.record.name}” could not be loaded (${messageOf(e)}); it goes on from the default model`);
      bytes = await fetchBytes(ASSETS.model, 'the detector model');
      state.session = await startEngine(bytes, PREFER_WEBGPU && !problem).catch((e2) => {
        throw new Error(`The detector could not start: ${messageOf(e2)}`);
      });
    }
    state.currentWeights = bytes;
    state.facts = {
      backend: state.session.backend,
      notice: problem || state.session.notice,
      // The hash of the meta-model the project started from, not of its trained weights.
      baseModelHash: (fromProject && chosen.record.baseModelHash) || state.session.baseModelHash,
      inputSize: state.session.inputSize,
    };
    document.body.dataset.model = fromProject ? 'project' : 'default';
    showBackend();
    applyTrainDefaults(await state.session.trainSettings({}));
    state.classNames = [...state.session.classNames];
    classPicker.setClasses(state.classNames, null);
    setTargetClasses(null);
    const resumed = chosen && !chosen.isNew && (chosen.record.summary?.images || 0) > 0;
    if (state.project) {
      const saved = state.project.record.classNames || [];
      if (resumed && saved.length && saved.join('\n') !== state.classNames.join('\n')) {
        showError(`“${state.project.record.name}” was labelled with the classes ${saved.join(', ')} but the model has ${state.classNames.join(', ')}; class numbers may not mean the same`);
      }
      state.project.saveProject({ baseModelHash: state.facts.baseModelHash, classNames: state.classNames });
    }
    if (resumed) {
      applySettings(state.project.record.settings);
      await restoreProject(fromProject || !chosen.record.weights);
      startHistoryLoad();
      setLocked(false);
      setPhase('ready');
      state.openNote = `Resumed “${state.project.record.name}”${fromProject ? ' with its trained weights' : ''}. `;
    } else {
      if (state.project) applySettings(state.project.record.settings);
      // Before the page is ready: a run started while the samples load waits for the history library.
      startHistoryLoad();
      setLocked(false);
      setPhase('ready');
      try {
        await loadTransferSamples();
      } catch (e) {
        showError('The sample images could not be loaded', e);
      }
    }
    startPredictLoop();
    refreshStats();
    idleStatus();
  } catch (e) {
    document.body.dataset.phase = 'failed';
    ui.badge.textContent = 'not started';
    showError(messageOf(e));
    setStatus('The detector did not start; see the error above.');
  }
}

// Read-only view for the browser tests: where the current image's boxes are
// on screen (CSS pixels relative to the canvas).
window.veritunePage = Object.freeze({
  /** Resolves when everything changed so far is saved: 'saved', 'failed', or 'none' without a project. */
  async saved() {
    if (!state.project) return 'none';
    await state.project.flush();
    return state.project.state;
  },
  /** The selected box in working-image pixels, or null. */
  selectedBox() {
    const entry = images[state.current];
    const b = entry && boxOf(entry, state.selection);
    return b ? { ...state.selection, bbox: { ...b.bbox }, class: b.class, width: entry.width, height: entry.height } : null;
  },
  zoom() {
    return { ...state.zoom, scale: state.viewTf.scale };
  },
  /** The current image's candidates (class, score, box) that its verdicts refer to. */
  candidates() {
    const entry = images[state.current];
    return entry && entry.base ? entry.base.candidates.map((c) => ({ ...c, bbox: { ...c.bbox } })) : null;
  },
  /** The current image's shown boxes (class, score, box), in list order. */
  shown() {
    const entry = images[state.current];
    return entry && entry.base ? shownOf(entry).map((i) => ({ ...entry.base.candidates[i], bbox: { ...entry.base.candidates[i].bbox } })) : null;
  },
  /** The current image's name, sizes and the boxes the user vouches for (confirmed, corrected, drawn). */
  labels() {
    const entry = images[state.current];
    if (!entry) return null;
    const { labels } = userBoxes(entry);
    return {
      name: entry.name,
      width: entry.width,
      height: entry.height,
      originalWidth: entry.originalWidth,
      originalHeight: entry.originalHeight,
      boxes: labels.map((l) => ({ bbox: { ...l.bbox }, class: l.class })),
    };
  },
  /** The names of the session's history members, in library order. */
  historyIds() {
    return withSession((s) => s.historyIds());
  },
  /** Where a box in working-image pixels is on screen (CSS pixels relative to the canvas). */
  imageToScreen(bbox) {
    return toScreen(bbox);
  },
  boxesOnScreen() {
    const entry = images[state.current];
    if (!entry || !entry.base) return [];
    const out = shownOf(entry).map((i, k) => ({ key: `shown-${k}`, ...toScreen(boxOf(entry, { kind: 'shown', index: i }).bbox) }));
    entry.drawn.forEach((d, k) => out.push({ key: `drawn-${k}`, ...toScreen(d.bbox) }));
    return out;
  },
});

start();
