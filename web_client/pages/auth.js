// Sign in and sign up. Both return to ?next= (an in-app path, such as the invite page) when done.

import { h } from '../dom.js';
import * as session from '../session.js';
import * as router from '../router.js';
import { field, form, valueOf } from '../ui.js';

function nextOf(ctx) {
  return router.safeNext(ctx.query.get('next'));
}

function withNext(target, ctx) {
  const next = ctx.query.get('next');
  return next ? `#${target}?next=${encodeURIComponent(next)}` : `#${target}`;
}

export const signIn = {
  mount(outlet, ctx) {
    const email = field({ label: 'Email', name: 'email', kind: 'email', required: true, autocomplete: 'username' });
    const password = field({ label: 'Password', name: 'password', kind: 'password', required: true,
      autocomplete: 'current-password' });
    outlet.append(h('section', { class: 'card narrow' },
      h('h1', null, 'Sign in'),
      ctx.query.get('next')?.startsWith('/join/') ? h('p', { class: 'muted' }, 'Sign in to accept your invite.') : null,
      form({
        label: 'Sign in', fields: [email, password], submit: 'Sign in',
        onSubmit: async () => {
          await session.signIn(valueOf(email), password.control.value);
          router.navigate(nextOf(ctx), { replace: true });
        },
      }),
      h('p', null, 'New here? ', h('a', { href: withNext('/signup', ctx) }, 'Create an account'))));
    email.control.focus();
  },
};

export const signUp = {
  mount(outlet, ctx) {
    const name = field({ label: 'Display name', name: 'display_name', required: true, autocomplete: 'name',
      maxlength: 80, hint: 'How other members see you.' });
    const email = field({ label: 'Email', name: 'email', kind: 'email', required: true, autocomplete: 'email' });
    const password = field({ label: 'Password', name: 'password', kind: 'password', required: true,
      autocomplete: 'new-password', hint: 'At least 8 characters.' });
    outlet.append(h('section', { class: 'card narrow' },
      h('h1', null, 'Create your account'),
      form({
        label: 'Sign up', fields: [name, email, password], submit: 'Sign up',
        onSubmit: async () => {
          await session.signUp(valueOf(name), valueOf(email), password.control.value);
          router.navigate(nextOf(ctx), { replace: true });
        },
      }),
      h('p', null, 'Already have an account? ', h('a', { href: withNext('/signin', ctx) }, 'Sign in'))));
    name.control.focus();
  },
};
