// Start-up: restore the session, wire the header, the connection banner and the routes.

import { h, replace } from './dom.js';
import * as api from './api.js';
import * as session from './session.js';
import * as router from './router.js';
import { hub } from './socket.js';
import { connectionBanner, toast } from './ui.js';
import * as auth from './pages/auth.js';
import * as home from './pages/home.js';
import * as discover from './pages/discover.js';
import * as newCircle from './pages/new_circle.js';
import * as join from './pages/join.js';
import * as profile from './pages/profile.js';
import * as circle from './pages/circle.js';
import * as lesson from './pages/class.js';
import * as liveRoom from './class/live_room.js';

router.route('/', home, { auth: true });
router.route('/signin', auth.signIn, { guestOnly: true });
router.route('/signup', auth.signUp, { guestOnly: true });
router.route('/profile', profile, { auth: true });
router.route('/discover', discover);
router.route('/circles/new', newCircle, { auth: true });
router.route('/circles/:id/:tab?', circle);
router.route('/join/:token', join);
router.route('/classes/:id', lesson, { auth: true });
lesson.setLiveRoom(liveRoom);

router.setGuard((entry, ctx) => {
  if (entry.options.auth && !session.me()) return `/signin?next=${encodeURIComponent(ctx.path)}`;
  if (entry.options.guestOnly && session.me()) return router.safeNext(ctx.query.get('next'));
  return null;
});

function renderNav() {
  const nav = document.getElementById('site-nav');
  const user = session.me();
  const link = (href, text) => h('a', { href: `#${href}`, dataset: { path: href } }, text);
  if (user) {
    replace(nav,
      link('/', 'My circles'),
      link('/discover', 'Discover'),
      profileLink(user),
      h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
  } else {
    replace(nav, link('/discover', 'Discover'), link('/signin', 'Sign in'), link('/signup', 'Sign up'));
  }
  markCurrent();
}

/** The profile link: the name on wide screens, initials in a circle on phones; named in full for everyone. */
function profileLink(user) {
  const initials = user.display_name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join('');
  return h('a', { href: '#/profile', dataset: { path: '/profile' }, class: 'profile-link',
    'aria-label': `${user.display_name}, your profile` },
  h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials || '?'),
  h('span', { class: 'profile-name', 'aria-hidden': 'true' }, user.display_name));
}

function markCurrent() {
  const path = router.currentPath().split('?')[0];
  for (const a of document.querySelectorAll('#site-nav a')) {
    const target = a.dataset.path;
    const active = target === '/' ? path === '/' : path.startsWith(target);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function signOut() {
  try {
    await session.signOut();
  } catch (error) {
    toast(error.message, 'error');
  }
  router.navigate('/signin');
}

async function main() {
  connectionBanner(document.getElementById('connection-banner'), hub);
  api.onUnauthorized(() => {
    // The session ended on the server (expired, or signed out everywhere): say so, and offer to come back here.
    if (!session.me()) return;
    session.expired();
    toast('Your session has ended. Sign in again to continue.', 'error');
    router.navigate(`/signin?next=${encodeURIComponent(router.currentPath())}`);
  });
  session.onChange((user, identityChanged) => {
    renderNav();
    if (!identityChanged) return;
    if (user) hub.start();
    else hub.stop();
  });
  document.addEventListener('quanzi:navigated', markCurrent);
  const main = document.getElementById('main');
  try {
    await session.restore();
  } catch (error) {
    replace(main, h('div', { class: 'empty', role: 'alert' }, h('p', null, error.message),
      h('button', { type: 'button', onclick: () => location.reload() }, 'Try again')));
    return;
  }
  renderNav();
  router.start(main);
}

main();
