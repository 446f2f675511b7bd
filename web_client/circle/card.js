// One circle in a list (my circles, discover): its name links to the circle page.

import { h, humanize } from '../dom.js';
import { badge } from '../ui.js';

const POLICY = { open: 'Open to join', application: 'Join by application', invite: 'Invite only' };

export function policyLabel(policy) {
  return POLICY[policy] ?? humanize(policy);
}

export function circleCard(circle) {
  return h('li', { class: 'card circle-card' },
    h('h3', null, h('a', { href: `#/circles/${encodeURIComponent(circle.id)}` }, circle.name)),
    circle.description ? h('p', { class: 'clamp' }, circle.description) : null,
    h('p', { class: 'badges' },
      badge(humanize(circle.kind)),
      badge(policyLabel(circle.join_policy)),
      circle.visibility !== 'public' ? badge(humanize(circle.visibility)) : null,
      circle.my_role ? badge(humanize(circle.my_role), 'role') : null,
      circle.archived ? badge('Archived', 'warn') : null));
}
