// The Projects dialog: resume the last project, open, rename or delete
// another, start a new one, import a project file; shows the storage used.

import { Store, formatBytes, storageUse } from './project.js';

const $ = (id) => document.getElementById(id);

function when(iso) {
  const t = Date.parse(iso || '');
  if (!Number.isFinite(t)) return 'unknown';
  return new Date(t).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function describe(p) {
  const s = p.summary || {};
  const parts = [
    `${s.images || 0} image${s.images === 1 ? '' : 's'}`,
    `${s.reviewed || 0} reviewed`,
    s.runs ? `trained ${s.runs} time${s.runs === 1 ? '' : 's'}` : 'not trained',
    formatBytes(s.bytes || 0),
    `saved ${when(p.updatedAt)}`,
  ];
  return parts.join(' · ');
}

/**
 * Shows the dialog. `currentId` is the project open in this tab (null at
 * start). Resolves with {action: 'open', id} or {action: 'new'} — or
 * {action: 'close'} when closed without a choice (never at start: closing
 * then resumes the last project).
 */
export function showProjects({ store, currentId = null, atStart = false, busy = false }) {
  const dialog = $('projects-dialog');
  const list = $('projects-list');
  const errorEl = $('projects-error');
  const resume = $('projects-resume');
  const intro = $('projects-intro');
  const storage = $('projects-storage');
  const importInput = $('projects-import');
  const newButton = $('projects-new');
  const closeButton = $('projects-close');

  return new Promise((resolve) => {
    let projects = [];
    let openElsewhere = new Set();
    let settled = false;
    let lastId = null;

    const finish = (result) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (dialog.open) dialog.close();
      document.body.dataset.projectsDialog = 'closed';
      resolve(result);
    };
    const showError = (text) => {
      errorEl.textContent = text;
      errorEl.hidden = !text;
    };

    const render = async () => {
      try {
        projects = await store.list();
        openElsewhere = await Store.openIds();
      } catch (e) {
        showError(`The projects could not be listed: ${e.message || e}.`);
      }
      if (currentId) openElsewhere.delete(currentId);
      const last = projects.find((p) => !openElsewhere.has(p.id) && p.id !== currentId);
      lastId = atStart && last ? last.id : null;
      resume.hidden = !lastId;
      if (lastId) resume.textContent = `Resume “${last.name}”`;
      intro.textContent = atStart
        ? projects.length
          ? 'Your projects are saved in this browser. Resume the last one, open another or start a new one.'
          : 'No saved project yet.'
        : 'Projects are saved in this browser after every change.';
      list.replaceChildren(...projects.map(item));
      const use = await storageUse();
      storage.textContent = use ? `Storage used by this page in this browser: ${use}.` : '';
      newButton.disabled = busy;
      importInput.disabled = busy;
      closeButton.hidden = atStart;
      document.body.dataset.projectsDialog = 'open';
    };

    const item = (p) => {
      const li = document.createElement('li');
      li.dataset.project = p.id;
      const isCurrent = p.id === currentId;
      const elsewhere = openElsewhere.has(p.id);
      const head = document.createElement('div');
      head.className = 'project-head';
      const name = document.createElement('span');
      name.className = 'project-name';
      name.textContent = p.name;
      head.append(name);
      if (isCurrent || elsewhere) {
        const tag = document.createElement('span');
        tag.className = 'project-tag';
        tag.textContent = isCurrent ? 'open here' : 'open in another tab';
        head.append(tag);
      }
      const info = document.createElement('p');
      info.className = 'project-info';
      info.textContent = describe(p);
      const actions = document.createElement('div');
      actions.className = 'row project-actions';
      const button = (text, label, onClick, disabled = false) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = text;
        b.setAttribute('aria-label', `${label} “${p.name}”`);
        b.disabled = disabled;
        b.addEventListener('click', onClick);
        return b;
      };
      actions.append(
        button('Open', 'Open', () => finish({ action: 'open', id: p.id }), isCurrent || elsewhere || busy),
        button('Rename', 'Rename', () => rename(li, p)),
        button('Delete', 'Delete', () => confirmDelete(li, p), isCurrent || elsewhere),
      );
      li.append(head, info, actions);
      return li;
    };

    const rename = (li, p) => {
      const form = document.createElement('form');
      form.className = 'row project-rename';
      const input = document.createElement('input');
      input.type = 'text';
      input.value = p.name;
      input.maxLength = 200;
      input.required = true;
      input.setAttribute('aria-label', `New name for “${p.name}”`);
      const save = document.createElement('button');
      save.type = 'submit';
      save.textContent = 'Save name';
      const cancel = document.createElement('button');
      cancel.type = 'button';
      cancel.textContent = 'Cancel';
      cancel.addEventListener('click', render);
      form.append(input, save, cancel);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        try {
          const name = await store.rename(p.id, input.value);
          showError('');
          if (p.id === currentId) document.dispatchEvent(new CustomEvent('veritune:renamed', { detail: name }));
          await render();
        } catch (e) {
          showError(`Could not rename: ${e.message || e}.`);
        }
      });
      li.querySelector('.project-actions').replaceWith(form);
      input.focus();
      input.select();
    };

    const confirmDelete = (li, p) => {
      const row = document.createElement('div');
      row.className = 'row project-confirm';
      const q = document.createElement('span');
      q.textContent = `Delete “${p.name}” and its images and weights from this browser?`;
      const yes = document.createElement('button');
      yes.type = 'button';
      yes.textContent = 'Delete for good';
      yes.className = 'danger';
      const no = document.createElement('button');
      no.type = 'button';
      no.textContent = 'Keep';
      no.addEventListener('click', render);
      yes.addEventListener('click', async () => {
        try {
          await store.delete(p.id);
          showError('');
        } catch (e) {
          showError(`Could not delete “${p.name}”: ${e.message || e}.`);
        }
        await render();
        (resume.hidden ? newButton : resume).focus();
      });
      row.append(q, yes, no);
      li.querySelector('.project-actions').replaceWith(row);
      no.focus();
    };

    const onResume = () => lastId && finish({ action: 'open', id: lastId });
    const onNew = () => finish({ action: 'new' });
    const onClose = () => finish(atStart && lastId ? { action: 'open', id: lastId } : atStart ? { action: 'new' } : { action: 'close' });
    const onCancel = (ev) => {
      // At start there is no page behind the dialog yet: Escape resumes.
      if (atStart) {
        ev.preventDefault();
        onClose();
      }
    };
    const onDialogClose = () => onClose();
    const onImport = async () => {
      const file = importInput.files && importInput.files[0];
      importInput.value = '';
      if (!file) return;
      showError('');
      const status = $('projects-import-status');
      status.textContent = `Importing “${file.name}”…`;
      try {
        const record = await store.import(file);
        status.textContent = '';
        finish({ action: 'open', id: record.id, imported: true });
      } catch (e) {
        status.textContent = '';
        showError(`${String(e.message || e).replace(/[.\s]+$/, '')}.`);
      }
    };
    const cleanup = () => {
      resume.removeEventListener('click', onResume);
      newButton.removeEventListener('click', onNew);
      closeButton.removeEventListener('click', onClose);
      dialog.removeEventListener('cancel', onCancel);
      dialog.removeEventListener('close', onDialogClose);
      importInput.removeEventListener('change', onImport);
    };
    resume.addEventListener('click', onResume);
    newButton.addEventListener('click', onNew);
    closeButton.addEventListener('click', onClose);
    dialog.addEventListener('cancel', onCancel);
    dialog.addEventListener('close', onDialogClose);
    importInput.addEventListener('change', onImport);

    showError('');
    render().then(() => {
      if (!dialog.open) dialog.showModal();
      (resume.hidden ? newButton : resume).focus();
    });
  });
}
