// The target classes: the classes a user reviews. Boxes of other classes are
// not shown, and training leaves the model's scores for them alone (the
// verdicts' `reviewedClasses`).

/**
 * A filterable checklist of the model's classes. `onChange(selected)` is
 * called after the user changes the choice; `selected` is null for every
 * class, else a sorted array of class indices.
 */
export class TargetClassPicker {
  constructor({ list, filter, all, none, summary }, onChange) {
    this.els = { list, filter, all, none, summary };
    this.onChange = onChange;
    this.names = [];
    this.chosen = null;
    filter.addEventListener('input', () => this.applyFilter());
    all.addEventListener('click', () => this.set(null, true));
    none.addEventListener('click', () => this.set([], true));
    list.addEventListener('change', (ev) => {
      const box = ev.target;
      if (!(box instanceof HTMLInputElement)) return;
      const c = Number(box.value);
      const chosen = new Set(this.chosen ?? this.names.map((_, i) => i));
      if (box.checked) chosen.add(c);
      else chosen.delete(c);
      this.set(chosen.size === this.names.length ? null : [...chosen], true);
    });
  }

  /** Shows the classes `names`, `chosen` (indices, or null for all) ticked. */
  setClasses(names, chosen) {
    this.names = names;
    this.els.list.replaceChildren(
      ...names.map((name, c) => {
        const li = document.createElement('li');
        const label = document.createElement('label');
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.value = String(c);
        label.append(box, ` ${name}`);
        li.append(label);
        return li;
      }),
    );
    this.set(chosen, false);
    this.applyFilter();
  }

  /** The chosen classes: null for every class, else sorted indices. */
  selected() {
    return this.chosen ? [...this.chosen] : null;
  }

  set(chosen, byUser) {
    this.chosen = chosen === null ? null : [...new Set(chosen)].filter((c) => c >= 0 && c < this.names.length).sort((a, b) => a - b);
    const on = new Set(this.chosen ?? this.names.map((_, i) => i));
    for (const box of this.els.list.querySelectorAll('input')) box.checked = on.has(Number(box.value));
    this.els.summary.textContent =
      this.chosen === null
        ? `all ${this.names.length}`
        : this.chosen.length === 0
          ? 'none (no boxes are shown)'
          : this.chosen.length <= 4
            ? this.chosen.map((c) => this.names[c]).join(', ')
            : `${this.chosen.length} of ${this.names.length}`;
    if (byUser) this.onChange(this.selected());
  }

  applyFilter() {
    const q = this.els.filter.value.trim().toLowerCase();
    for (const li of this.els.list.children) li.hidden = Boolean(q) && !li.textContent.toLowerCase().includes(q);
  }
}
