// The keyboard shortcuts: one list drives both the key handler (keyboard.js,
// through `shortcutFor`) and the help dialog (`?`, `renderShortcuts`).
//
// Each row: `group` and `keys` (as the dialog shows them), `help`, and for
// rows that a key press runs: `on` (the `KeyboardEvent.key` values), the
// `action` keyboard.js runs, `ctrl` (Ctrl or Cmd held; otherwise it must not be),
// `alt` (Alt may be held; otherwise it must not be), `when` (`editable`: an
// image with predictions to review; `selected`: a box selected on it;
// `unselected`: no box selected), and `keepDefault` (the browser's own
// handling goes on). Rows without `on` only document a modifier of the row
// above them, which its action reads from the event.

const ARROWS = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export const SHORTCUTS = [
  { group: 'Images', keys: ['←', '→'], help: 'Previous / next image, when no box is selected', on: ['ArrowLeft', 'ArrowRight'], when: 'unselected', action: 'stepImage' },
  { group: 'Images', keys: ['Page Up', 'Page Down'], help: 'Previous / next image, always', on: ['PageUp', 'PageDown'], action: 'stepImage' },
  { group: 'Images', keys: ['Home', 'End'], help: 'First / last image', on: ['Home', 'End'], action: 'endImage' },
  { group: 'Boxes', keys: ['N'], help: 'Select the next box', on: ['n', 'N'], when: 'editable', action: 'stepBox' },
  { group: 'Boxes', keys: ['Shift+N'], help: 'Select the previous box' },
  { group: 'Boxes', keys: ['C'], help: 'Confirm the selected box, then select the next box not judged yet', on: ['c', 'C'], when: 'editable', action: 'confirm' },
  { group: 'Boxes', keys: ['X'], help: 'Reject the selected box (not an object), then select the next one', on: ['x', 'X'], when: 'editable', action: 'reject' },
  { group: 'Boxes', keys: ['A'], help: 'Confirm every shown box not judged yet', on: ['a', 'A'], when: 'editable', action: 'confirmAll' },
  {
    group: 'Boxes',
    keys: ['0', '…', '9'],
    help: 'Class of the selected box (a correction); with no box selected, the class of new boxes. A key picks the class of that name, else the n-th class',
    on: DIGITS,
    when: 'editable',
    action: 'classKey',
  },
  { group: 'Boxes', keys: ['Delete', 'Backspace'], help: 'Remove the selected drawn box; reject the selected detected box', on: ['Delete', 'Backspace'], when: 'editable', action: 'remove' },
  { group: 'Boxes', keys: ['←', '↑', '→', '↓'], help: 'Move the selected box by 1 pixel', on: ARROWS, alt: true, when: 'selected', action: 'nudge' },
  { group: 'Boxes', keys: ['Shift+arrows'], help: 'Move the selected box by 10 pixels' },
  { group: 'Boxes', keys: ['Alt+arrows'], help: 'Resize the selected box (moves its right or bottom edge; Shift for 10 pixels)' },
  { group: 'Boxes', keys: ['Escape'], help: 'Deselect the box', on: ['Escape'], action: 'deselect', keepDefault: true },
  { group: 'Drawing', keys: ['D'], help: 'Switch between drawing missed boxes and selecting (mouse)', on: ['d', 'D'], when: 'editable', action: 'toggleDraw' },
  { group: 'Drawing', keys: ['B'], help: 'Add a missed box in the middle of the view, selected: move and resize it with the keys above', on: ['b', 'B'], when: 'editable', action: 'addBox' },
  { group: 'Undo', keys: ['Ctrl+Z'], help: 'Undo the last verdict or box edit (any image)', on: ['z', 'Z'], ctrl: true, action: 'undo' },
  { group: 'Undo', keys: ['Ctrl+Shift+Z', 'Ctrl+Y'], help: 'Redo', on: ['y', 'Y'], ctrl: true, action: 'redo' },
  { group: 'View', keys: ['+', '='], help: 'Zoom in', on: ['+', '='], action: 'zoomIn' },
  { group: 'View', keys: ['-'], help: 'Zoom out', on: ['-', '_'], action: 'zoomOut' },
  { group: 'View', keys: ['F'], help: 'Fit the image in the view', on: ['f', 'F'], action: 'zoomFit' },
  { group: 'View', keys: ['Wheel'], help: 'Zoom at the pointer' },
  { group: 'View', keys: ['Space+drag', 'Middle drag'], help: 'Pan' },
  { group: 'Help', keys: ['?'], help: 'Show this list', on: ['?'], action: 'help' },
];

const HOLDS = {
  editable: (state) => state.editable,
  selected: (state) => state.selected,
  unselected: (state) => !state.selected,
};

/**
 * The row a key press runs, or undefined: `state` says whether the image is
 * `editable` and whether a box is `selected` on it.
 */
export function shortcutFor(ev, state) {
  const ctrl = ev.ctrlKey || ev.metaKey;
  return SHORTCUTS.find(
    (row) =>
      row.on &&
      row.on.includes(ev.key) &&
      Boolean(row.ctrl) === ctrl &&
      (row.alt || !ev.altKey) &&
      (!row.when || HOLDS[row.when](state)),
  );
}

/** Fills `container` with one table per group. */
export function renderShortcuts(container) {
  container.replaceChildren();
  const groups = new Map();
  for (const row of SHORTCUTS) groups.set(row.group, [...(groups.get(row.group) || []), row]);
  for (const [group, rows] of groups) {
    const table = document.createElement('table');
    table.className = 'shortcuts';
    const caption = document.createElement('caption');
    caption.textContent = group;
    table.append(caption);
    const body = document.createElement('tbody');
    for (const { keys, help } of rows) {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      keys.forEach((k, i) => {
        if (k === '…') {
          th.append(' … ');
          return;
        }
        if (i > 0 && keys[i - 1] !== '…') th.append(' ');
        const kbd = document.createElement('kbd');
        kbd.textContent = k;
        th.append(kbd);
      });
      const td = document.createElement('td');
      td.textContent = help;
      tr.append(th, td);
      body.append(tr);
    }
    table.append(body);
    container.append(table);
  }
}
