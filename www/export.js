// Downloads and label import: the adapted weights with their manifest,
// labels (COCO, YOLO, VOC), the project file; labels imported for the open
// images.

import { displayName } from './images.js';
import { Store, imageRecord, formatBytes, FILE_EXTENSION } from './project.js';
import { verdictState } from './verdict-state.js';
import { state, ui, images, runs, undoStack } from './state.js';
import { showError, setStatus, idleStatus } from './messages.js';
import { withSession } from './session.js';
import { shownOf, verdictsOf, isReviewed, userBoxes, verdictsChanged } from './verdicts.js';
import { select } from './image-list.js';
import { startPredictLoop } from './predictions.js';
import { settings } from './page-project.js';

/** Download names of the weights per format (`Session.exportWeights`). */
const WEIGHTS_FILES = { burnpack: 'veritune-adapted.bpk', safetensors: 'veritune-adapted.safetensors' };
/** Download names of the labels per format (`Session.exportLabels`): COCO is one file, the others a ZIP archive. */
const LABEL_FILES = { coco: 'veritune-labels-coco.json', yolo: 'veritune-labels-yolo.zip', voc: 'veritune-labels-voc.zip' };
/** Files a label import reads from a picked folder. */
const LABEL_FILE = /\.(json|txt|xml)$/i;

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Downloads the adapted weights in the chosen format and their manifest (verdicts, runs). */
export async function exportAll() {
  if (!state.session || state.training || state.crashMessage) return;
  ui.exportButton.disabled = true;
  const format = ui.weightsFormat.value;
  const file = WEIGHTS_FILES[format];
  setStatus(`Exporting the adapted weights as ${format}…`);
  try {
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    const bytes = await withSession((s) => s.exportWeights(format));
    if (!bytes || !bytes.length) throw new Error('The session returned no weights');
    download(new Blob([bytes], { type: 'application/octet-stream' }), file);
    const stats = await withSession((s) => s.stats());
    const manifest = {
      format: 'veritune-manifest',
      version: 1,
      created: new Date().toISOString(),
      weights: { file, format, bytes: bytes.length },
      model: state.model.id,
      baseModelHash: state.facts.baseModelHash,
      historyLibrary: state.historyAbout || null,
      targetClasses: state.targetClasses && state.targetClasses.map((c) => state.classNames[c]),
      backend: state.facts.backend,
      backendNotice: state.facts.notice,
      classNames: state.classNames,
      inputSize: state.facts.inputSize,
      threshold: state.threshold,
      verdicts: {
        samples: stats.samples,
        correct: stats.correct,
        missed: stats.missed,
        falseDetections: stats.falseDetections,
        history: stats.history,
        images: images
          .filter((e) => e.inSession)
          .map((e) => {
            const v = verdictsOf(e);
            const count = (k) => v.shown.filter((s) => s.judgement && s.judgement.kind === k).length;
            return {
              name: e.name,
              source: e.source,
              width: e.width,
              height: e.height,
              categories: e.categories,
              shown: v.shown.length,
              confirmed: count('confirmed'),
              rejected: count('rejected'),
              corrected: count('corrected'),
              drawn: v.drawn.length,
            };
          }),
      },
      training: runs.map((r) => ({
        run: r.index,
        rule: r.rule,
        epochs: r.epochs,
        untilHonored: Boolean(r.untilHonored),
        epochChecks: r.epochChecks || [],
        historyKept: r.historyKept || null,
        batchSize: r.batchSize,
        learningRate: r.learningRate,
        freezeBackbone: Boolean(r.freezeBackbone),
        backend: r.backend,
        startedAt: r.startedAt,
        seconds: Math.round(r.seconds * 10) / 10,
        cancelled: r.cancelled,
        steps: r.records.length,
        records: r.records,
        before: r.before,
        after: r.after,
        history: r.history || null,
      })),
    };
    download(new Blob([JSON.stringify(manifest, null, 2)], { type: 'application/json' }), 'veritune-manifest.json');
    setStatus(`Downloaded ${file} (${bytes.length.toLocaleString()} bytes) and veritune-manifest.json.`);
  } catch (e) {
    showError('Export failed', e);
    idleStatus();
  } finally {
    ui.exportButton.disabled = state.training || !state.session || Boolean(state.crashMessage);
  }
}

/** Downloads the labels the reviewed images' verdicts give, in the chosen format, in the original images' pixels. */
export async function exportLabels() {
  if (!state.session || state.locked || state.crashMessage) return;
  const format = ui.labelFormat.value;
  const file = LABEL_FILES[format];
  ui.exportLabels.disabled = true;
  try {
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    const reviewed = images.filter(isReviewed);
    if (!reviewed.length) {
      showError('There are no labels to download yet: judge every box on at least one image (Confirm all is the quick way) or draw the missed objects');
      return;
    }
    const items = reviewed.map((e) => ({
      name: e.name,
      width: e.width,
      height: e.height,
      originalWidth: e.originalWidth,
      originalHeight: e.originalHeight,
      verdicts: verdictsOf(e),
    }));
    const bytes = await withSession((s) => s.exportLabels(format, items));
    download(new Blob([bytes], { type: format === 'coco' ? 'application/json' : 'application/zip' }), file);
    const boxes = reviewed.reduce((n, e) => n + userBoxes(e).labels.length, 0);
    setStatus(`Downloaded ${file}: ${boxes} box${boxes === 1 ? '' : 'es'} on ${reviewed.length} reviewed image${reviewed.length === 1 ? '' : 's'}.`);
  } catch (e) {
    showError('The labels could not be written', e);
  } finally {
    ui.exportLabels.disabled = state.locked || !state.session || Boolean(state.crashMessage);
  }
}

/** "a, b, c and 4 more" of quoted names. */
function someNames(names, shown = 5) {
  const quoted = names.slice(0, shown).map((n) => `“${n}”`);
  return names.length > shown ? `${quoted.join(', ')} and ${names.length - shown} more` : quoted.join(', ');
}

/**
 * Imports label files (COCO, YOLO with classes.txt, or Pascal VOC) for the
 * open images: each matched image gets the verdicts a careful user would
 * give knowing those objects, all of them as one undo step.
 */
export async function importLabels(fileList, fromFolder) {
  if (!state.session || state.locked || state.crashMessage) {
    showError('Labels cannot be imported while training runs; wait for it to finish or cancel it.');
    return;
  }
  const all = [...fileList];
  // A folder holds images and other files too: only label files are read.
  const files = fromFolder ? all.filter((f) => LABEL_FILE.test(f.name)) : all;
  if (!files.length) {
    showError(all.length ? 'The chosen folder has no label files (.json, .txt or .xml).' : 'No files were chosen.');
    return;
  }
  ui.importReport.textContent = '';
  try {
    // The verdicts refer to each image's prediction: every open image needs one.
    setStatus('Predicting the open images before importing labels…');
    await startPredictLoop('Predicting before the import');
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    setStatus(`Reading ${files.length} label file${files.length === 1 ? '' : 's'}…`);
    const texts = await Promise.all(files.map(async (f) => ({ name: displayName(f), text: await f.text() })));
    const targets = images.filter((e) => e.base);
    const shown = targets.map((e) => shownOf(e));
    const open = targets.map((e, k) => ({
      name: e.name,
      width: e.width,
      height: e.height,
      shown: shown[k].map((i) => e.base.candidates[i]),
    }));
    const result = await withSession((s) => s.importLabels(texts, open));
    const changes = [];
    const count = { confirmed: 0, corrected: 0, rejected: 0, drawn: 0, objects: 0 };
    for (const r of result.images) {
      const entry = targets[r.index];
      const before = verdictState(entry);
      entry.judgements = new Map(shown[r.index].map((i, k) => [i, r.judgements[k]]));
      entry.drawn = r.drawn.map((d) => ({ bbox: { ...d.bbox }, class: d.class }));
      entry.touched = true;
      changes.push({ entry, before });
      for (const j of r.judgements) count[j.kind] += 1;
      count.drawn += r.drawn.length;
      count.objects += r.objects;
    }
    undoStack.pushGroup(changes, 'import labels');
    if (changes.length && !changes.some((c) => c.entry === images[state.current])) select(images.indexOf(changes[0].entry));
    for (const { entry } of changes) verdictsChanged(entry);
    const lines = [];
    const n = changes.length;
    lines.push(
      n
        ? `Imported ${result.format.toUpperCase()} labels for ${n} image${n === 1 ? '' : 's'} (${count.objects} object${count.objects === 1 ? '' : 's'}): ` +
            `${count.confirmed} shown box${count.confirmed === 1 ? '' : 'es'} confirmed, ${count.corrected} corrected (the right object under another class), ${count.rejected} rejected, ${count.drawn} drawn. Undo reverts the import.`
        : `No image was labelled: none of the ${result.format.toUpperCase()} labels names an open image.`,
    );
    if (result.notOpen.length) {
      lines.push(`${result.notOpen.length} label entr${result.notOpen.length === 1 ? 'y names an image' : 'ies name images'} that ${result.notOpen.length === 1 ? 'is' : 'are'} not open: ${someNames(result.notOpen)}; open ${result.notOpen.length === 1 ? 'it' : 'them'} and import again to use ${result.notOpen.length === 1 ? 'it' : 'them'}.`);
    }
    if (result.repeated.length) {
      lines.push(`${result.repeated.length} label entr${result.repeated.length === 1 ? 'y was' : 'ies were'} skipped because an earlier one labels the same image: ${someNames(result.repeated)}.`);
    }
    for (const c of result.unknownClasses) {
      lines.push(`The model has no class “${c.name}”: ${c.boxes} box${c.boxes === 1 ? ' was' : 'es were'} skipped.`);
    }
    const unpredicted = images.length - targets.length;
    if (unpredicted) lines.push(`${unpredicted} open image${unpredicted === 1 ? ' has' : 's have'} no prediction and got no labels.`);
    ui.importReport.textContent = lines.join(' ');
    if (!n) showError(lines[0]);
    setStatus(lines[0]);
  } catch (e) {
    showError('The labels could not be imported', e);
    idleStatus();
  }
}

/** Downloads the whole project (images, verdicts, weights, runs) as one file. */
export async function exportProject() {
  if (!state.session || state.training || state.crashMessage) return;
  ui.exportProject.disabled = true;
  setStatus('Writing the project file…');
  try {
    await Promise.all(images.map((e) => e.syncing).filter(Boolean));
    // The weights only when they differ from the default model's.
    const weights = runs.length ? await withSession((s) => s.exportWeights()) : null;
    const record = {
      ...(state.project ? state.project.record : { name: 'veritune project', createdAt: new Date().toISOString() }),
      baseModelHash: state.facts.baseModelHash,
      classNames: state.classNames,
      settings: settings(),
      current: images[state.current] ? images[state.current].id : null,
      nextId: state.nextId,
    };
    const file = Store.encode({
      project: record,
      images: images.map((e, k) => [imageRecord('', e, k), e.file]),
      weights,
      runs,
    });
    const base = record.name.replace(/[^\p{L}\p{N}._ -]+/gu, '_').trim() || 'project';
    download(file, `${base}${FILE_EXTENSION}`);
    setStatus(`Downloaded ${base}${FILE_EXTENSION} (${formatBytes(file.size)}, ${images.length} images${weights ? ', trained weights' : ''}).`);
  } catch (e) {
    showError('The project file could not be written', e);
    idleStatus();
  } finally {
    ui.exportProject.disabled = state.training || !state.session || Boolean(state.crashMessage);
  }
}
