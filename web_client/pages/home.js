// My circles: the circles the signed-in user belongs to.

import { h, replace } from '../dom.js';
import * as api from '../api.js';
import { emptyState, failure, loading } from '../ui.js';
import { circleCard } from '../circle/card.js';

export function mount(outlet) {
  const list = h('div', null, loading());
  outlet.append(h('section', null,
    h('div', { class: 'page-head' },
      h('h1', null, 'My circles'),
      h('div', { class: 'row' },
        h('a', { class: 'button', href: '#/discover' }, 'Discover circles'),
        h('a', { class: 'button primary', href: '#/circles/new' }, 'Create a circle'))),
    list));

  async function load() {
    replace(list, loading());
    try {
      const { circles } = await api.get('/api/me/circles');
      replace(list, circles.length
        ? h('ul', { class: 'grid-list', 'aria-label': 'My circles' }, circles.map(circleCard))
        : emptyState('You are not in any circle yet.', h('a', { href: '#/discover' }, 'Find one to join')));
    } catch (error) {
      replace(list, failure(error, load));
    }
  }
  load();
}
