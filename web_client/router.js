// Hash routes (#/circles/abc/chat), so every page survives a reload: the server serves index.html only at /
// and at /join/<token>. An invite link lands on /join/<token> and is rewritten to #/join/<token> at start.
//
// A page module exports mount(outlet, ctx) and may return {update(ctx), unmount()}. When the route changes but
// the page's key(params) stays the same (say, another tab of the same circle), update() is called instead of
// mounting again, so live state such as the circle's chat connection is kept.

const routes = [];
let outlet = null;
let current = null;
let guard = null;

/** route('/circles/:id/:tab?', page, {auth: true}) */
export function route(pattern, page, options = {}) {
  const names = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const optional = part.endsWith('?');
      names.push(part.slice(1, optional ? -1 : undefined));
      return optional ? '?([^/]*)' : '([^/]+)';
    })
    .join('/');
  routes.push({ pattern, regex: new RegExp(`^${source}/?$`), names, page, options });
}

/** A function (route, ctx) => redirect path or null, consulted before every mount (sign-in checks). */
export function setGuard(fn) {
  guard = fn;
}

/** Only an in-app path is a valid place to return to after signing in. */
export function safeNext(next) {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function currentPath() {
  const hash = location.hash.replace(/^#/, '');
  return hash || '/';
}

export function navigate(to, { replace = false } = {}) {
  const target = `#${to}`;
  if (location.hash === target) {
    render();
  } else if (replace) {
    history.replaceState(null, '', target);
    render();
  } else {
    location.hash = target;
  }
}

function match(full) {
  const [pathname, search = ''] = full.split('?');
  for (const entry of routes) {
    const found = entry.regex.exec(pathname);
    if (!found) continue;
    const params = {};
    entry.names.forEach((name, i) => {
      params[name] = found[i + 1] ? decodeURIComponent(found[i + 1]) : null;
    });
    return { entry, ctx: { params, query: new URLSearchParams(search), path: full } };
  }
  return null;
}

function render() {
  const found = match(currentPath());
  if (!found) {
    navigate('/', { replace: true });
    return;
  }
  const { entry, ctx } = found;
  const redirect = guard ? guard(entry, ctx) : null;
  if (redirect) {
    navigate(redirect, { replace: true });
    return;
  }
  const key = entry.page.key ? entry.page.key(ctx.params) : null;
  if (current && current.entry === entry && key !== null && current.key === key && current.instance?.update) {
    current.instance.update(ctx);
    return;
  }
  current?.instance?.unmount?.();
  outlet.replaceChildren();
  const instance = entry.page.mount(outlet, ctx) ?? null;
  current = { entry, key, instance };
  document.dispatchEvent(new CustomEvent('quanzi:navigated', { detail: ctx }));
}

export function start(target) {
  outlet = target;
  const invite = /^\/join\/([^/]+)\/?$/.exec(location.pathname);
  if (invite) history.replaceState(null, '', `/#/join/${invite[1]}`);
  window.addEventListener('hashchange', render);
  render();
}
