// Create a circle: yours, or one of an institution you teach at.

import { h } from '../dom.js';
import * as api from '../api.js';
import * as router from '../router.js';
import { field, form, valueOf } from '../ui.js';
import { CHAT_HISTORY, JOIN_POLICY, KIND, VISIBILITY } from '../circle/options.js';

export function mount(outlet) {
  const name = field({ label: 'Name', name: 'name', required: true, maxlength: 120 });
  const description = field({ label: 'Description', name: 'description', kind: 'textarea', maxlength: 4000 });
  const kind = field({ label: 'Kind', name: 'kind', kind: 'select', options: KIND, value: 'course' });
  const visibility = field({ label: 'Visibility', name: 'visibility', kind: 'select', options: VISIBILITY, value: 'public' });
  const joinPolicy = field({ label: 'Who may join', name: 'join_policy', kind: 'select', options: JOIN_POLICY, value: 'open' });
  const history = field({ label: 'Chat history', name: 'chat_history', kind: 'select', options: CHAT_HISTORY, value: 'all' });
  const cap = field({ label: 'Member cap', name: 'member_cap', kind: 'number', value: 500, min: 2, max: 100000 });
  const owner = field({ label: 'Owner', name: 'institution_id', kind: 'select', options: [['', 'Me']], value: '' });
  const fields = [name, description, kind, visibility, joinPolicy, history, cap, owner];
  owner.hidden = true;
  api.get('/api/institutions').then(({ institutions }) => {
    const eligible = institutions.filter((i) => i.my_role && i.my_role !== 'staff');
    if (!eligible.length) return;
    owner.control.append(...eligible.map((i) => h('option', { value: i.id }, i.name)));
    owner.hidden = false;
  }).catch(() => {});

  outlet.append(h('section', { class: 'card narrow' }, h('h1', null, 'Create a circle'), form({
    label: 'Create a circle', fields, submit: 'Create circle',
    onSubmit: async () => {
      const institution = valueOf(owner);
      const circle = await api.post('/api/circles', {
        name: valueOf(name), description: valueOf(description), kind: valueOf(kind),
        visibility: valueOf(visibility), join_policy: valueOf(joinPolicy), chat_history: valueOf(history),
        member_cap: valueOf(cap) ?? 500, institution_id: institution ? Number(institution) : null,
      });
      router.navigate(`/circles/${encodeURIComponent(circle.id)}`);
    },
  })));
  name.control.focus();
}
