// A circle: its header, its tabs (feed, members, manage, and whatever else registers), and the chat panel.
// Changing tab keeps the page (and the chat's live connection) in place: only the tab's content is swapped.

import { h, humanize, replace } from '../dom.js';
import * as api from '../api.js';
import * as session from '../session.js';
import { hub } from '../socket.js';
import { badge, failure, loading } from '../ui.js';
import { abilities, findTab, registerCircleTab, visibleTabs } from '../circle/tabs.js';
import { policyLabel } from '../circle/card.js';
import { ChatPanel } from '../circle/chat.js';
import { joinPanel } from '../circle/join_panel.js';
import * as feed from '../circle/feed.js';
import * as members from '../circle/members.js';
import * as manage from '../circle/manage.js';
import * as classes from '../circle/classes.js';

registerCircleTab({ id: 'feed', label: 'Feed', order: 10, mount: feed.mount });
registerCircleTab({ id: 'chat', label: 'Chat', order: 20, visible: (ctx) => ctx.isMember, narrowOnly: true });
registerCircleTab({ id: 'classes', label: 'Classes', order: 25, visible: (ctx) => ctx.isMember, mount: classes.mount });
registerCircleTab({ id: 'members', label: 'Members', order: 30, visible: (ctx) => ctx.isMember, mount: members.mount });
registerCircleTab({ id: 'manage', label: 'Manage', order: 90, visible: (ctx) => ctx.isModerator, mount: manage.mount });

export function key(params) {
  return params.id;
}

export function mount(outlet, route) {
  const circleId = route.params.id;
  const root = h('div', { class: 'circle-page' }, loading());
  outlet.append(root);
  let ctx = null;
  let chat = null;
  let tabNav = null;
  let tabBody = null;
  let layout = null;
  let mountedTab = null;
  let tabId = route.params.tab || 'feed';
  let disposed = false;

  async function load() {
    replace(root, loading());
    let circle;
    let sections;
    try {
      [circle, { sections }] = await Promise.all([
        api.get(api.path`/api/circles/${circleId}`),
        api.get(api.path`/api/circles/${circleId}/sections`),
      ]);
    } catch (error) {
      if (!disposed) replace(root, failure(error, load));
      return;
    }
    if (disposed) return;
    chat?.unmount();
    chat = null;
    const can = abilities(circle.my_role);
    ctx = { circle, role: circle.my_role ?? null, me: session.me(), sections, hub, chat: null, ...can, reload: load };
    build();
  }

  function build() {
    const { circle } = ctx;
    mountedTab?.instance?.unmount?.();
    mountedTab = null;
    tabNav = h('nav', { class: 'tabs', 'aria-label': 'Circle sections' });
    tabBody = h('div', { class: 'circle-main' });
    const column = h('div', { class: 'circle-column' },
      h('header', { class: ctx.isMember ? 'circle-head' : 'circle-head has-join' },
        h('div', null,
          h('h1', null, circle.name),
          circle.description ? h('p', { class: 'circle-description' }, circle.description) : null,
          h('p', { class: 'badges' }, badge(humanize(circle.kind)), badge(policyLabel(circle.join_policy)),
            badge(humanize(circle.visibility)), ctx.role ? badge(`You: ${humanize(ctx.role)}`, 'role') : null,
            circle.archived ? badge('Archived: read-only', 'warn') : null)),
        ctx.isMember ? null : joinPanel(ctx)),
      classes.liveNow(ctx), tabNav, tabBody);
    // Wide screens: the column and the chat side by side, the chat sticky. Phones: one column, chat as a tab.
    layout = h('div', { class: 'circle-layout' }, column);
    if (ctx.isMember) {
      chat = new ChatPanel({ circle, me: ctx.me, hub, onUnread: showUnread });
      ctx.chat = chat;
      layout.classList.add('with-chat');
      layout.append(chat.el);
    }
    replace(root, layout);
    chat?.start();
    showTab(tabId);
  }

  function showUnread(count) {
    const link = tabNav?.querySelector('[data-tab="chat"]');
    if (!link) return;
    const counter = link.querySelector('.count');
    counter.textContent = count > 0 ? String(count) : '';
    counter.hidden = count === 0;
    link.setAttribute('aria-label', count > 0 ? `Chat, ${count} unread` : 'Chat');
  }

  function showTab(id) {
    const tabs = visibleTabs(ctx);
    if (!tabs.some((tab) => tab.id === id)) id = 'feed';
    tabId = id;
    const base = `#/circles/${encodeURIComponent(ctx.circle.id)}`;
    replace(tabNav, tabs.map((tab) => h('a', {
      href: tab.id === 'feed' ? base : `${base}/${tab.id}`,
      class: tab.narrowOnly ? 'narrow-only' : null,
      dataset: { tab: tab.id },
      'aria-current': tab.id === id ? 'page' : null,
    }, tab.label, tab.id === 'chat' ? h('span', { class: 'count', hidden: true }) : null)));
    if (chat) showUnread(chat.unread);
    layout.classList.toggle('tab-chat', id === 'chat');
    // The chat tab shows the chat panel; the main column keeps the feed for wide screens, where both are visible.
    const contentTab = findTab(id)?.mount ? findTab(id) : findTab('feed');
    if (mountedTab?.id !== contentTab.id) {
      mountedTab?.instance?.unmount?.();
      tabBody.replaceChildren();
      const instance = contentTab.mount(tabBody, ctx) ?? null;
      mountedTab = { id: contentTab.id, instance };
    }
    chat?.visibilityChanged();
  }

  load();
  return {
    update(next) {
      if (ctx) showTab(next.params.tab || 'feed');
      else tabId = next.params.tab || 'feed';
    },
    unmount() {
      disposed = true;
      mountedTab?.instance?.unmount?.();
      chat?.unmount();
    },
  };
}
