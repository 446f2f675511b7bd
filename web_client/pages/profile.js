// Your profile: name and the tags other members filter by (position, education, industry, your own fields),
// and the password.

import { h } from '../dom.js';
import * as api from '../api.js';
import * as session from '../session.js';
import { field, form, toast, valueOf } from '../ui.js';

function customFieldRow(key = '', value = '') {
  const keyField = field({ label: 'Field', name: 'custom_key', value: key, maxlength: 40, placeholder: 'e.g. city' });
  const valueField = field({ label: 'Value', name: 'custom_value', value, maxlength: 200, placeholder: 'e.g. Hangzhou' });
  const row = h('div', { class: 'row custom-field' }, keyField, valueField);
  const remove = h('button', { type: 'button', class: 'link danger', onclick: () => row.remove() }, 'Remove');
  row.append(remove);
  row.read = () => [valueOf(keyField), valueOf(valueField)];
  return row;
}

export function mount(outlet) {
  const user = session.me();
  const displayName = field({ label: 'Display name', name: 'display_name', value: user.display_name, required: true, maxlength: 80 });
  const realName = field({ label: 'Real name', name: 'real_name', value: user.real_name ?? '', maxlength: 120,
    hint: 'Shown only to admins of your circles.' });
  const position = field({ label: 'Position', name: 'position', value: user.position ?? '', maxlength: 120, placeholder: 'e.g. Engineer' });
  const education = field({ label: 'Education', name: 'education', value: user.education ?? '', maxlength: 120, placeholder: 'e.g. Master' });
  const industry = field({ label: 'Industry', name: 'industry', value: user.industry ?? '', maxlength: 120, placeholder: 'e.g. Finance' });
  const rows = h('div', { class: 'stack' }, Object.entries(user.custom_fields ?? {}).map(([k, v]) => customFieldRow(k, v)));
  const addRow = h('button', { type: 'button', onclick: () => rows.append(customFieldRow()) }, 'Add a field');
  const custom = h('fieldset', null, h('legend', null, 'More about you'), rows, addRow);

  const profileForm = form({
    label: 'Profile', fields: [displayName, realName, position, education, industry], extra: [custom],
    submit: 'Save profile',
    onSubmit: async () => {
      const customFields = {};
      for (const row of rows.children) {
        const [key, value] = row.read();
        if (key) customFields[key] = value;
      }
      const orNull = (wrapper) => valueOf(wrapper) || null;
      const saved = await api.patch('/api/me', {
        display_name: valueOf(displayName), real_name: orNull(realName), position: orNull(position),
        education: orNull(education), industry: orNull(industry), custom_fields: customFields,
      });
      session.updated(saved);
      toast('Profile saved.');
    },
  });

  const current = field({ label: 'Current password', name: 'current_password', kind: 'password', required: true,
    autocomplete: 'current-password' });
  const next = field({ label: 'New password', name: 'new_password', kind: 'password', required: true,
    autocomplete: 'new-password', hint: 'At least 8 characters. Your other sessions end.' });
  const passwordForm = form({
    label: 'Change password', fields: [current, next], submit: 'Change password',
    onSubmit: async () => {
      await api.post('/api/me/password', { current_password: current.control.value, new_password: next.control.value });
      current.control.value = '';
      next.control.value = '';
      toast('Password changed.');
    },
  });

  outlet.append(h('div', { class: 'columns' },
    h('section', { class: 'card', 'aria-labelledby': 'profile-title' },
      h('h1', { id: 'profile-title' }, 'Your profile'),
      h('p', { class: 'muted' }, user.email, user.verified ? ' · verified' : ''),
      profileForm),
    h('section', { class: 'card', 'aria-labelledby': 'password-title' },
      h('h2', { id: 'password-title' }, 'Password'), passwordForm)));
}
