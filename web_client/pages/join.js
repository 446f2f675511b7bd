// The invite page (/join/<token>, also what an invite's QR code opens): preview the circle, then accept.
// Signed out, it offers sign-in and sign-up, both of which come back here.

import { h, humanize, replace } from '../dom.js';
import * as api from '../api.js';
import * as session from '../session.js';
import * as router from '../router.js';
import { act, badge, failure, loading } from '../ui.js';
import { policyLabel } from '../circle/card.js';

const STATUS = {
  revoked: 'This invite has been revoked.',
  expired: 'This invite has expired.',
  used_up: 'This invite has been used as many times as it allows.',
  full: 'This circle is full.',
};

export function mount(outlet, ctx) {
  const token = ctx.params.token;
  const box = h('section', { class: 'card narrow join-card', 'aria-labelledby': 'join-title' }, loading());
  outlet.append(box);

  async function load() {
    replace(box, loading());
    let preview;
    try {
      preview = await api.get(api.path`/api/invites/${token}`);
    } catch (error) {
      replace(box, failure(error.status === 404 ? { message: 'This invite link is not valid.' } : error, load));
      return;
    }
    const { circle, role, status } = preview;
    const circleHref = `#/circles/${encodeURIComponent(circle.id)}`;
    const here = `/join/${encodeURIComponent(token)}`;
    const action = h('div', { class: 'stack' });
    if (status !== 'valid') {
      action.append(h('p', { class: 'form-error', role: 'alert' }, STATUS[status] ?? humanize(status)));
    } else if (circle.my_role) {
      action.append(h('p', null, 'You are already a member of this circle. ', h('a', { href: circleHref }, 'Open it')));
    } else if (!session.me()) {
      action.append(
        h('p', null, 'Sign in or create an account to accept this invite.'),
        h('div', { class: 'row' },
          h('a', { class: 'button primary', href: `#/signin?next=${encodeURIComponent(here)}` }, 'Sign in to join'),
          h('a', { class: 'button', href: `#/signup?next=${encodeURIComponent(here)}` }, 'Create an account')));
    } else {
      const accept = h('button', { type: 'button', class: 'primary' }, 'Accept invite');
      accept.addEventListener('click', () => act(accept, async () => {
        try {
          await api.post(api.path`/api/invites/${token}/accept`);
        } catch (error) {
          if (error.status !== 409) throw error; // 409: already a member, which is what the user wanted anyway
        }
        router.navigate(`/circles/${encodeURIComponent(circle.id)}`);
      }));
      action.append(h('p', null, `Signed in as ${session.me().display_name}.`), accept);
    }
    replace(box,
      h('p', { class: 'eyebrow' }, 'You are invited to join'),
      h('h1', { id: 'join-title' }, circle.name),
      circle.description ? h('p', null, circle.description) : null,
      h('p', { class: 'badges' }, badge(humanize(circle.kind)), badge(policyLabel(circle.join_policy)),
        badge(`Joining as ${humanize(role)}`, 'role')),
      action);
  }
  load();
}
