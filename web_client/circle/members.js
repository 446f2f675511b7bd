// The member directory: search by name, filter by profile tags and role; your own nickname and notifications;
// for moderators, the actions on each member their rank allows (role, mute, remove, ban).

import { h, humanize, replace } from '../dom.js';
import * as api from '../api.js';
import * as router from '../router.js';
import { act, badge, emptyState, failure, field, form, toast, valueOf } from '../ui.js';
import { rankOf } from './tabs.js';
import { fetchRoster } from './roster.js';

const ROLES = ['member', 'teacher', 'admin', 'owner'];
const MUTE_FOR = [['600', '10 minutes'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '1 week'], ['0', 'Lift mute']];

export function mount(el, ctx) {
  const { circle } = ctx;
  const base = api.path`/api/circles/${circle.id}`;
  const tagValues = { position: new Set(), education: new Set(), industry: new Set() };
  const lists = {};
  const filterFields = {
    q: field({ label: 'Search by name', name: 'q', kind: 'search' }),
    position: field({ label: 'Position', name: 'position', list: 'dir-position' }),
    education: field({ label: 'Education', name: 'education', list: 'dir-education' }),
    industry: field({ label: 'Industry', name: 'industry', list: 'dir-industry' }),
    role: field({ label: 'Role', name: 'role', kind: 'select', options: [['', 'Any role'], ...ROLES.map((r) => [r, humanize(r)])] }),
  };
  for (const tag of Object.keys(tagValues)) lists[tag] = h('datalist', { id: `dir-${tag}` });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter members' },
    Object.values(filterFields), Object.values(lists),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'reset', class: 'link' }, 'Clear')));
  let debounce = null;
  filters.addEventListener('submit', (event) => { event.preventDefault(); load(); });
  filters.addEventListener('reset', () => setTimeout(load));
  filters.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(load, 300); });
  filters.addEventListener('change', () => { clearTimeout(debounce); load(); });

  const results = h('div', { class: 'directory', 'aria-live': 'polite' });
  el.append(h('section', { class: 'card', 'aria-label': 'Member directory' }, h('h2', null, 'Members'), filters, results),
    mySettings(ctx));

  let serial = 0;
  async function load() {
    const mine = ++serial;
    const query = { limit: 50 };
    for (const [key, wrapper] of Object.entries(filterFields)) query[key] = valueOf(wrapper) || null;
    const list = h('ul', { class: 'member-list', 'aria-label': 'Members found' });
    const more = h('button', { type: 'button', hidden: true }, 'Show more');
    let after = null;
    const page = async () => {
      const data = await api.get(`${base}/members`, { ...query, after });
      if (mine !== serial) return -1;
      for (const member of data.members) {
        for (const tag of Object.keys(tagValues)) if (member[tag]) tagValues[tag].add(member[tag]);
        list.append(memberCard(member));
      }
      for (const [tag, values] of Object.entries(tagValues)) replace(lists[tag], [...values].sort().map((v) => h('option', { value: v })));
      after = data.next_after;
      more.hidden = !after;
      return data.members.length;
    };
    more.addEventListener('click', () => act(more, page));
    try {
      const count = await page();
      if (count < 0) return;
      replace(results, h('p', { class: 'muted result-count' }, count === 1 && !after ? '1 member' : `${count}${after ? '+' : ''} members`),
        count ? [list, more] : emptyState('No member matches these filters.'));
    } catch (error) {
      if (mine === serial) replace(results, failure(error, load));
    }
  }

  function memberCard(member) {
    const shown = member.nickname ? `${member.nickname} (${member.name})` : member.name;
    const tags = ['position', 'education', 'industry']
      .filter((tag) => member[tag])
      .map((tag) => h('li', null, `${humanize(tag)}: ${member[tag]}`));
    for (const [key, value] of Object.entries(member.custom_fields ?? {})) tags.push(h('li', null, `${key}: ${value}`));
    const card = h('li', { class: 'member', dataset: { userId: member.user_id } },
      h('div', { class: 'member-main' },
        h('p', { class: 'member-name' }, h('strong', null, member.nickname || member.name),
          member.nickname && member.identity ? h('span', { class: 'muted' }, ` (${member.identity.display_name})`) : null,
          ' ', badge(humanize(member.role), 'role'),
          member.verified ? badge('Verified', 'ok') : null,
          member.member_type !== 'member' ? badge(humanize(member.member_type)) : null),
        member.identity ? h('p', { class: 'muted identity' }, [member.identity.real_name, member.identity.email].filter(Boolean).join(' · ')) : null,
        tags.length ? h('ul', { class: 'tags', 'aria-label': `Profile of ${shown}` }, tags) : null));
    const tools = memberTools(member, shown);
    if (tools) card.append(tools);
    return card;
  }

  function memberTools(member, shown) {
    const myRank = rankOf(ctx.role);
    if (!ctx.isModerator || member.user_id === ctx.me.id || rankOf(member.role) >= myRank || circle.archived) return null;
    const box = h('details', { class: 'member-tools' }, h('summary', null, `Manage ${shown}`));
    const mute = field({ label: `Mute ${shown} in chat for`, name: 'mute', kind: 'select', options: MUTE_FOR, value: '3600' });
    const muteButton = h('button', { type: 'button' }, 'Apply');
    muteButton.addEventListener('click', () => act(muteButton, async () => {
      const seconds = Number(valueOf(mute));
      await ctx.hub.call('mute_member', { circle_id: circle.id, user_id: member.user_id, seconds });
      toast(seconds ? `${shown} is muted.` : `${shown} may chat again.`);
    }));
    box.append(h('div', { class: 'row' }, mute, muteButton));
    if (ctx.isAdmin) {
      const grantable = ROLES.filter((r) => r !== 'owner' && rankOf(r) < myRank);
      const role = field({ label: `Role of ${shown}`, name: 'role', kind: 'select', options: grantable.map((r) => [r, humanize(r)]), value: member.role });
      const roleButton = h('button', { type: 'button' }, 'Change role');
      roleButton.addEventListener('click', () => act(roleButton, async () => {
        await api.patch(api.path`/api/circles/${circle.id}/members/${member.user_id}`, { role: valueOf(role) });
        toast(`${shown} is now ${humanize(valueOf(role)).toLowerCase()}.`);
        load();
      }));
      const remove = h('button', { type: 'button', class: 'danger' }, 'Remove from circle');
      remove.addEventListener('click', () => {
        if (!confirm(`Remove ${shown} from the circle?`)) return;
        act(remove, async () => {
          await api.del(api.path`/api/circles/${circle.id}/members/${member.user_id}`);
          toast(`${shown} was removed.`);
          load();
        });
      });
      const reason = field({ label: `Reason for banning ${shown}`, name: 'reason', maxlength: 500 });
      const ban = h('button', { type: 'button', class: 'danger' }, 'Ban');
      ban.addEventListener('click', () => {
        if (!confirm(`Ban ${shown}? They are removed and cannot come back until unbanned.`)) return;
        act(ban, async () => {
          await api.post(api.path`/api/circles/${circle.id}/bans`, { user_id: member.user_id, reason: valueOf(reason) });
          toast(`${shown} was banned.`);
          load();
        });
      });
      box.append(h('div', { class: 'row' }, role, roleButton), h('div', { class: 'row' }, remove),
        h('div', { class: 'row' }, reason, ban));
      if (ctx.isOwner) {
        const transfer = h('button', { type: 'button' }, `Make ${shown} the owner`);
        transfer.addEventListener('click', () => {
          if (!confirm(`Hand ${circle.name} to ${shown}? You stay in the circle as an admin.`)) return;
          act(transfer, async () => {
            await api.post(api.path`/api/circles/${circle.id}/transfer`, { user_id: member.user_id });
            toast(`${shown} now owns the circle.`);
            ctx.reload();
          });
        });
        box.append(h('div', { class: 'row' }, transfer));
      }
    }
    return box;
  }

  load();
}

function mySettings(ctx) {
  const { circle } = ctx;
  const nickname = field({ label: 'Nickname in this circle', name: 'nickname', maxlength: 80,
    hint: 'Members see it instead of your display name; admins still see who you are.' });
  // The API has no read of one's own notification level, so the form offers to keep it as it is.
  const level = field({ label: 'Chat notifications', name: 'notification_level', kind: 'select', value: '',
    options: [['', 'Keep the current setting'], ['all', 'All messages'], ['mentions', 'Only mentions'], ['none', 'None']] });
  fetchRoster(circle.id).then((members) => {
    const me = members.find((m) => m.user_id === ctx.me.id);
    if (me?.nickname) nickname.control.value = me.nickname;
  }).catch(() => {});
  const leave = h('button', { type: 'button', class: 'danger' }, 'Leave circle');
  leave.addEventListener('click', () => {
    if (!confirm(`Leave ${circle.name}?`)) return;
    act(leave, async () => {
      await api.del(api.path`/api/circles/${circle.id}/members/${ctx.me.id}`);
      router.navigate('/');
    });
  });
  return h('section', { class: 'card', 'aria-labelledby': 'my-membership' },
    h('h2', { id: 'my-membership' }, 'You in this circle'),
    form({
      label: 'Your membership', fields: [nickname, level], submit: 'Save',
      onSubmit: async () => {
        const change = { nickname: valueOf(nickname) || null };
        if (valueOf(level)) change.notification_level = valueOf(level);
        await api.patch(api.path`/api/circles/${circle.id}/members/me`, change);
        toast('Saved.');
      },
    }),
    ctx.role !== 'owner' ? leave : h('p', { class: 'muted' }, 'As the owner, transfer the circle before you leave.'));
}
