// Shared pieces of interface: labelled fields, forms that report errors, toasts, the connection banner.

import { h, uid, replace, sentence } from './dom.js';

/**
 * A labelled control. kind: 'text' | 'email' | 'password' | 'number' | 'textarea' | 'select' | 'checkbox' | 'url'.
 * Returns the wrapper element; the control is wrapper.control.
 */
export function field({ label, name, kind = 'text', value = '', required = false, options = [], hint = null,
                        placeholder = null, autocomplete = null, min = null, max = null, maxlength = null,
                        rows = 3, list = null }) {
  const id = uid(name ?? 'field');
  const hintId = hint ? `${id}-hint` : null;
  const common = { id, name, required, placeholder, autocomplete, 'aria-describedby': hintId };
  let control;
  if (kind === 'textarea') {
    control = h('textarea', { ...common, rows, maxlength, value });
  } else if (kind === 'select') {
    control = h('select', common, options.map((option) => {
      const [optionValue, optionLabel] = Array.isArray(option) ? option : [option, option];
      return h('option', { value: optionValue, selected: String(optionValue) === String(value) }, optionLabel);
    }));
  } else if (kind === 'checkbox') {
    control = h('input', { ...common, type: 'checkbox', checked: Boolean(value) });
  } else {
    control = h('input', { ...common, type: kind, value: value ?? '', min, max, maxlength, list });
  }
  const problem = h('span', { class: 'field-problem', id: `${id}-problem`, hidden: true });
  const wrapper = kind === 'checkbox'
    ? h('div', { class: 'field field-check' }, control, h('label', { for: id }, label), problem)
    : h('div', { class: required ? 'field required' : 'field' }, h('label', { for: id }, label),
      control, hint ? h('span', { class: 'hint', id: hintId }, hint) : null, problem);
  wrapper.control = control;
  wrapper.problem = problem;
  return wrapper;
}

/** The value of a field created by field(): strings trimmed, checkboxes as booleans, numbers as numbers. */
export function valueOf(wrapper) {
  const control = wrapper.control;
  if (control.type === 'checkbox') return control.checked;
  if (control.type === 'number') return control.value === '' ? null : Number(control.value);
  return control.value.trim();
}

/**
 * A form whose submit handler may be async. While it runs the submit button is disabled; an ApiError or HubError
 * is shown in the form's alert area and, for a 422, next to the fields it names.
 */
export function form({ label, fields = [], submit = 'Save', onSubmit, extra = [], className = 'stack' }) {
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', class: 'primary' }, submit);
  const el = h('form', { class: className, 'aria-label': label, novalidate: false }, fields, extra, error,
    h('div', { class: 'form-actions' }, button));
  el.error = error;
  el.button = button;
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    for (const wrapper of fields) clearProblem(wrapper);
    button.disabled = true;
    try {
      await onSubmit(event);
    } catch (caught) {
      showFormError(el, fields, caught);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

function clearProblem(wrapper) {
  if (!wrapper.problem) return;
  wrapper.problem.hidden = true;
  wrapper.control.removeAttribute('aria-invalid');
}

export function showFormError(formEl, fields, caught) {
  const problems = typeof caught.fieldProblems === 'function' ? caught.fieldProblems() : {};
  let placed = false;
  for (const wrapper of fields) {
    const problem = wrapper.control && problems[wrapper.control.name];
    if (!problem) continue;
    wrapper.problem.textContent = sentence(problem);
    wrapper.problem.hidden = false;
    wrapper.control.setAttribute('aria-invalid', 'true');
    wrapper.control.setAttribute('aria-errormessage', wrapper.problem.id);
    placed = true;
  }
  formEl.error.textContent = placed ? 'Please correct the marked fields.' : sentence(caught.message || 'Something went wrong.');
  formEl.error.hidden = false;
  if (!(caught && (caught.name === 'ApiError' || caught.name === 'HubError'))) console.error(caught);
}

/** A short message in the corner: kind 'info' | 'error'. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null }, sentence(message));
  box.append(item);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** Run an async action from a button: disabled while it runs, errors as a toast. */
export async function act(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (caught) {
    toast(caught.message || 'Something went wrong.', 'error');
    if (!(caught && (caught.name === 'ApiError' || caught.name === 'HubError'))) console.error(caught);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function emptyState(text, ...actions) {
  return h('div', { class: 'empty' }, h('p', null, text), actions);
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'muted', role: 'status' }, text);
}

/** A failed page load: the error message and a way to try again. */
export function failure(caught, retry) {
  return h('div', { class: 'empty', role: 'alert' },
    h('p', null, caught.status === 404 ? 'This page does not exist, or you may not see it.' : sentence(caught.message)),
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null);
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}`.trim() }, text);
}

const BANNER_TEXT = {
  connecting: 'Connecting to live updates…',
  reconnecting: 'Connection lost. Reconnecting…',
  offline: 'You are offline. Chat will catch up when the connection is back.',
  signed_out: 'Your session has ended. Sign in again to keep chatting.',
};

/** The banner under the header that shows whenever the live connection is not up. Never silent. */
export function connectionBanner(el, hub) {
  let showTimer = null;
  hub.onState((state) => {
    clearTimeout(showTimer);
    if (state === 'connected' || state === 'idle') {
      el.hidden = true;
      el.dataset.state = state;
      return;
    }
    const render = () => {
      el.dataset.state = state;
      const actions = [];
      if (state === 'reconnecting' || state === 'offline') {
        actions.push(h('button', { type: 'button', class: 'link', onclick: () => hub.retryNow() }, 'Retry now'));
      }
      if (state === 'signed_out') actions.push(h('a', { href: '#/signin' }, 'Sign in'));
      replace(el, h('span', null, BANNER_TEXT[state] ?? state), ' ', actions);
      el.hidden = false;
    };
    // A first connection normally takes a fraction of a second: show "connecting" only if it takes longer.
    if (state === 'connecting') showTimer = setTimeout(render, 800);
    else render();
  });
}
