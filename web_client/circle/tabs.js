// The circle page's tabs, as a registry: the page shows every registered tab that is visible to the viewer.
//
// This is the extension point for the live class pages: a module calls registerCircleTab({id: 'classes', ...})
// and its tab appears beside Feed and Members, with the same context as the others.
//
// A tab: {id, label, order, visible(ctx) -> bool, mount(el, ctx) -> {unmount()} | void}
// ctx: {circle, role, me, sections, hub, chat, isMember, isModerator, isAdmin, reload()}

const tabs = new Map();

export function registerCircleTab(tab) {
  tabs.set(tab.id, { order: 100, visible: () => true, ...tab });
}

export function visibleTabs(ctx) {
  return [...tabs.values()].filter((tab) => tab.visible(ctx)).sort((a, b) => a.order - b.order);
}

export function findTab(id) {
  return tabs.get(id) ?? null;
}

const RANK = { member: 0, teacher: 1, admin: 2, owner: 3 };

/** What the viewer's role lets them do here (the server decides; this only chooses what to show). */
export function abilities(role) {
  const rank = role ? RANK[role] ?? -1 : -1;
  return { isMember: rank >= 0, isModerator: rank >= 1, isAdmin: rank >= 2, isOwner: rank === 3, rank };
}

export function rankOf(role) {
  return RANK[role] ?? -1;
}
