// Building DOM without innerHTML: every piece of user text goes in as a text node.

let serial = 0;

/** A unique element id with a readable prefix, for label/for and aria-describedby pairs. */
export function uid(prefix = 'q') {
  serial += 1;
  return `${prefix}-${serial}`;
}

const PROPERTIES = new Set(['value', 'checked', 'selected', 'indeterminate']);

/**
 * h('button', {class: 'primary', onclick: fn}, 'Save') builds an element.
 * Attributes whose value is null, undefined or false are left out; true gives an empty attribute.
 * Keys starting with "on" add event listeners; value/checked/selected are set as properties.
 */
export function h(tag, props = null, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children: nodes, strings (as text), arrays of them; null/false/undefined are skipped. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace everything inside el with the given children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** "3 Dec, 14:05" in the reader's locale. */
export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

/** A <time> element for an ISO timestamp. */
export function time(iso) {
  return h('time', { datetime: iso, title: iso ? new Date(iso).toLocaleString() : null }, formatTime(iso));
}

/** A message as a sentence: the server's messages start in lower case ("wrong email or password"). */
export function sentence(text) {
  const value = String(text ?? '');
  return value ? value.charAt(0).toUpperCase() + value.slice(1) : value;
}

/** "Teacher" from "teacher", for showing enum values. */
export function humanize(value) {
  if (!value) return '';
  const text = String(value).replaceAll('_', ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}
