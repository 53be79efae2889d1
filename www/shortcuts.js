// The keyboard shortcuts, as shown in the help dialog (`?`). app.js handles
// the keys; this list is what the user reads, so keep the two together.

export const SHORTCUTS = [
  ['Images', [
    [['←', '→'], 'Previous / next image, when no box is selected'],
    [['Page Up', 'Page Down'], 'Previous / next image, always'],
    [['Home', 'End'], 'First / last image'],
  ]],
  ['Boxes', [
    [['N'], 'Select the next box'],
    [['Shift+N'], 'Select the previous box'],
    [['C'], 'Confirm the selected box, then select the next box not judged yet'],
    [['X'], 'Reject the selected box (not an object), then select the next one'],
    [['A'], 'Confirm every shown box not judged yet'],
    [['0', '…', '9'], 'Class of the selected box (a correction); with no box selected, the class of new boxes. A key picks the class of that name, else the n-th class'],
    [['Delete', 'Backspace'], 'Remove the selected drawn box; reject the selected detected box'],
    [['←', '↑', '→', '↓'], 'Move the selected box by 1 pixel'],
    [['Shift+arrows'], 'Move the selected box by 10 pixels'],
    [['Alt+arrows'], 'Resize the selected box (moves its right or bottom edge; Shift for 10 pixels)'],
    [['Escape'], 'Deselect the box'],
  ]],
  ['Drawing', [
    [['D'], 'Switch between drawing missed boxes and selecting (mouse)'],
    [['B'], 'Add a missed box in the middle of the view, selected: move and resize it with the keys above'],
  ]],
  ['Undo', [
    [['Ctrl+Z'], 'Undo the last verdict or box edit (any image)'],
    [['Ctrl+Shift+Z', 'Ctrl+Y'], 'Redo'],
  ]],
  ['View', [
    [['+', '='], 'Zoom in'],
    [['-'], 'Zoom out'],
    [['F'], 'Fit the image in the view'],
    [['Wheel'], 'Zoom at the pointer'],
    [['Space+drag', 'Middle drag'], 'Pan'],
  ]],
  ['Help', [
    [['?'], 'Show this list'],
  ]],
];

/** Fills `container` with one table per group. */
export function renderShortcuts(container) {
  container.replaceChildren();
  for (const [group, rows] of SHORTCUTS) {
    const table = document.createElement('table');
    table.className = 'shortcuts';
    const caption = document.createElement('caption');
    caption.textContent = group;
    table.append(caption);
    const body = document.createElement('tbody');
    for (const [keys, what] of rows) {
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
      td.textContent = what;
      tr.append(th, td);
      body.append(tr);
    }
    table.append(body);
    container.append(table);
  }
}
