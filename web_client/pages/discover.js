// Discover public circles, searching name and description; "Show more" pages by cursor.

import { h, replace } from '../dom.js';
import * as api from '../api.js';
import { emptyState, failure, field, loading } from '../ui.js';
import { circleCard } from '../circle/card.js';

export function mount(outlet, ctx) {
  const search = field({ label: 'Search circles', name: 'q', kind: 'search', value: ctx.query.get('q') ?? '',
    placeholder: 'Name or description' });
  const results = h('div', null);
  const searchForm = h('form', { class: 'row search-row', role: 'search', 'aria-label': 'Public circles' },
    search, h('button', { type: 'submit' }, 'Search'));
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    load(search.control.value.trim());
  });
  outlet.append(h('section', null, h('h1', null, 'Discover circles'), searchForm, results));

  async function load(q) {
    replace(results, loading());
    const list = h('ul', { class: 'grid-list', 'aria-label': 'Circles found' });
    const more = h('button', { type: 'button', hidden: true }, 'Show more');
    let before = null;
    async function page() {
      more.disabled = true;
      const data = await api.get('/api/circles', { q, before, limit: 24 });
      list.append(...data.circles.map(circleCard));
      before = data.next_before ?? null;
      more.hidden = !before;
      more.disabled = false;
      return data.circles.length;
    }
    more.addEventListener('click', () => page().catch((error) => replace(results, failure(error, () => load(q)))));
    try {
      const count = await page();
      replace(results, count ? [list, more] : emptyState(q ? `No public circle matches “${q}”.` : 'No public circles yet.'));
    } catch (error) {
      replace(results, failure(error, () => load(q)));
    }
  }
  load(search.control.value.trim());
}
