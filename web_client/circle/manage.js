// Managing a circle. Teachers see the invites they may make; admins and the owner also review applications,
// edit settings, the application form and sections, and moderate (bans, announcement mode, the audit log).

import { h, humanize, replace, time } from '../dom.js';
import * as api from '../api.js';
import { act, badge, emptyState, failure, field, form, loading, toast, valueOf } from '../ui.js';
import { CHAT_HISTORY, JOIN_POLICY, KIND, VISIBILITY } from './options.js';
import { rankOf } from './tabs.js';
import { fetchRoster, shownName } from './roster.js';

// How each audit action reads: "<actor> <verb> <target>".
const AUDIT_VERBS = {
  approve: 'approved the application of', reject: 'rejected the application of', ban: 'banned', unban: 'unbanned',
  remove: 'removed', change_role: 'changed the role of', transfer_ownership: 'handed the circle to',
  pin: 'pinned a post by', unpin: 'unpinned a post by', delete_post: 'deleted a post by',
  delete_comment: 'deleted a comment by', delete_message: 'deleted a chat message by', mute: 'muted', unmute: 'unmuted',
  announcement_mode_on: 'turned announcement mode on', announcement_mode_off: 'turned announcement mode off',
  revoke_invite: 'revoked an invite', archive: 'archived the circle', unarchive: 'restored the circle',
  cancel_class: 'cancelled a class',
};

const EXPIRY = [['86400', '1 day'], ['604800', '1 week'], ['2592000', '30 days'], ['31536000', '1 year']];

export function mount(el, ctx) {
  const panes = [
    ['applications', 'Applications', applications, ctx.isAdmin],
    ['invites', 'Invites', invites, ctx.isModerator],
    ['settings', 'Settings', settings, ctx.isAdmin],
    ['sections', 'Sections', sections, ctx.isAdmin],
    ['moderation', 'Moderation', moderation, ctx.isAdmin],
  ].filter((pane) => pane[3]);
  const body = h('div', { class: 'manage-body' });
  const nav = h('div', { class: 'subtabs', role: 'group', 'aria-label': 'Manage' });
  let current = null;
  const show = (id) => {
    current = id;
    replace(nav, panes.map(([paneId, label]) => h('button', {
      type: 'button', class: 'chip', 'aria-pressed': String(paneId === id), onclick: () => show(paneId),
    }, label)));
    const pane = panes.find((p) => p[0] === id);
    body.replaceChildren();
    pane[2](body, ctx);
  };
  el.append(h('section', { class: 'manage' }, h('h2', { class: 'visually-hidden' }, 'Manage the circle'), nav, body));
  show(current ?? panes[0][0]);
}

// --- applications ---

function applications(el, ctx) {
  const { circle } = ctx;
  const status = field({ label: 'Show', name: 'status', kind: 'select', value: 'pending',
    options: [['pending', 'Waiting for review'], ['approved', 'Approved'], ['rejected', 'Rejected']] });
  const list = h('div', null, loading());
  status.control.addEventListener('change', load);
  el.append(h('section', { class: 'card', 'aria-labelledby': 'apps-title' },
    h('div', { class: 'page-head' }, h('h2', { id: 'apps-title' }, 'Applications'), status), list));
  let questions = [];

  async function load() {
    replace(list, loading());
    try {
      const [form, data] = await Promise.all([
        api.get(api.path`/api/circles/${circle.id}/application-form`),
        api.get(api.path`/api/circles/${circle.id}/applications`, { status: valueOf(status) }),
      ]);
      questions = form.questions;
      replace(list, data.applications.length
        ? h('ul', { class: 'application-list', 'aria-label': 'Applications' }, data.applications.map(card))
        : emptyState(valueOf(status) === 'pending' ? 'No application is waiting for review.' : 'None.'));
    } catch (error) {
      replace(list, failure(error, load));
    }
  }

  function card(application) {
    const label = (id) => questions.find((q) => q.id === id)?.label ?? id;
    const answers = Object.entries(application.answers ?? {});
    const li = h('li', { class: 'application card', dataset: { applicationId: application.id } },
      h('p', null, h('strong', null, application.applicant.display_name),
        application.applicant.verified ? [' ', badge('Verified', 'ok')] : null, ' · applied ', time(application.created_at)),
      answers.length ? h('dl', { class: 'answers' }, answers.map(([id, answer]) => [h('dt', null, label(id)), h('dd', null, answer)]))
        : h('p', { class: 'muted' }, 'No answers.'),
      application.status !== 'pending'
        ? h('p', null, badge(humanize(application.status)), application.reason ? ` Reason: ${application.reason}` : '')
        : null);
    if (application.status === 'pending' && !circle.archived) {
      const reason = field({ label: `Reason for ${application.applicant.display_name}`, name: 'reason', maxlength: 500,
        hint: 'Shown to the applicant. Optional when approving.' });
      const review = (verb) => (event) => act(event.currentTarget, async () => {
        await api.post(api.path`/api/circles/${circle.id}/applications/${application.id}/${verb}`, { reason: valueOf(reason) || null });
        toast(`${application.applicant.display_name}: ${verb === 'approve' ? 'approved' : 'rejected'}.`);
        load();
      });
      li.append(reason, h('div', { class: 'row' },
        h('button', { type: 'button', class: 'primary', onclick: review('approve') }, `Approve ${application.applicant.display_name}`),
        h('button', { type: 'button', class: 'danger', onclick: review('reject') }, 'Reject')));
    }
    return li;
  }
  load();
}

// --- invites ---

function invites(el, ctx) {
  const { circle } = ctx;
  const myRank = rankOf(ctx.role);
  // Owners invite admins, admins invite teachers, teachers invite members (docs/circles.md).
  const grantable = ['member', 'teacher', 'admin'].filter((r) => rankOf(r) < myRank);
  const role = field({ label: 'Role it grants', name: 'role', kind: 'select', options: grantable.map((r) => [r, humanize(r)]), value: 'member' });
  const maxUses = field({ label: 'Maximum uses', name: 'max_uses', kind: 'number', min: 1, max: 10000, placeholder: 'No limit' });
  const expiry = field({ label: 'Expires after', name: 'expires_in_seconds', kind: 'select', options: EXPIRY, value: '604800' });
  const list = h('div', null, loading());
  const create = form({
    label: 'Create an invite', fields: [role, maxUses, expiry], submit: 'Create invite', className: 'inline-form',
    onSubmit: async () => {
      await api.post(api.path`/api/circles/${circle.id}/invites`, {
        role: valueOf(role), max_uses: valueOf(maxUses), expires_in_seconds: Number(valueOf(expiry)),
      });
      toast('Invite created.');
      load();
    },
  });
  el.append(h('section', { class: 'card', 'aria-labelledby': 'invites-title' },
    h('h2', { id: 'invites-title' }, 'Invite links'),
    h('p', { class: 'muted' }, 'Anyone with a link (or its QR code) can join with the role it grants, until it expires, is used up or revoked.'),
    circle.archived ? null : create, list));

  async function load() {
    replace(list, loading());
    try {
      const data = await api.get(api.path`/api/circles/${circle.id}/invites`);
      const active = data.invites.filter((i) => !i.revoked);
      replace(list, active.length ? h('ul', { class: 'invite-list', 'aria-label': 'Invites' }, active.map(card))
        : emptyState('No invite links yet.'));
    } catch (error) {
      replace(list, failure(error, load));
    }
  }

  function card(invite) {
    const qr = api.path`/api/circles/${circle.id}/invites/${invite.id}`;
    const linkField = field({ label: `Invite link (${humanize(invite.role)})`, name: 'invite_url', value: invite.url });
    linkField.control.readOnly = true;
    linkField.control.addEventListener('focus', () => linkField.control.select());
    const copy = h('button', { type: 'button' }, 'Copy link');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(invite.url);
        toast('Link copied.');
      } catch {
        linkField.control.select();
        toast('Select the link and copy it.');
      }
    });
    const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
    revoke.addEventListener('click', () => {
      if (!confirm('Revoke this invite? The link stops working.')) return;
      act(revoke, async () => {
        await api.del(api.path`/api/circles/${circle.id}/invites/${invite.id}`);
        toast('Invite revoked.');
        load();
      });
    });
    const expired = invite.expires_at && new Date(invite.expires_at) < new Date();
    return h('li', { class: 'invite card', dataset: { inviteId: invite.id } },
      h('img', { class: 'qr', src: `${qr}/qr.svg`, alt: `QR code of the ${invite.role} invite link`, width: 148, height: 148, loading: 'lazy' }),
      h('div', { class: 'invite-main' },
        linkField,
        h('p', { class: 'muted' },
          `${humanize(invite.role)} · used ${invite.uses}${invite.max_uses ? ` of ${invite.max_uses}` : ''} · `,
          invite.expires_at ? [expired ? 'expired ' : 'expires ', time(invite.expires_at)] : 'never expires'),
        h('div', { class: 'row' }, copy,
          h('a', { class: 'button', href: `${qr}/qr.png`, download: `invite-${invite.id}.png` }, 'Download QR (PNG)'),
          circle.archived ? null : revoke)));
  }
  load();
}

// --- settings and the application form ---

function settings(el, ctx) {
  const { circle } = ctx;
  const name = field({ label: 'Name', name: 'name', value: circle.name, required: true, maxlength: 120 });
  const description = field({ label: 'Description', name: 'description', kind: 'textarea', value: circle.description, maxlength: 4000 });
  const kind = field({ label: 'Kind', name: 'kind', kind: 'select', options: KIND, value: circle.kind });
  const visibility = field({ label: 'Visibility', name: 'visibility', kind: 'select', options: VISIBILITY, value: circle.visibility });
  const joinPolicy = field({ label: 'Who may join', name: 'join_policy', kind: 'select', options: JOIN_POLICY, value: circle.join_policy });
  const history = field({ label: 'Chat history', name: 'chat_history', kind: 'select', options: CHAT_HISTORY, value: circle.chat_history });
  const cap = field({ label: 'Member cap', name: 'member_cap', kind: 'number', value: circle.member_cap, min: 2, max: 100000 });
  const fields = [name, description, kind, visibility, joinPolicy, history, cap];
  const settingsForm = form({
    label: 'Circle settings', fields, submit: 'Save settings',
    onSubmit: async () => {
      await api.patch(api.path`/api/circles/${circle.id}`, {
        name: valueOf(name), description: valueOf(description), kind: valueOf(kind), visibility: valueOf(visibility),
        join_policy: valueOf(joinPolicy), chat_history: valueOf(history), member_cap: valueOf(cap),
      });
      toast('Settings saved.');
      ctx.reload();
    },
  });
  const archive = h('button', { type: 'button', class: 'danger' }, circle.archived ? 'Restore circle' : 'Archive circle');
  archive.addEventListener('click', () => {
    if (!circle.archived && !confirm('Archive this circle? It becomes read-only.')) return;
    act(archive, async () => {
      await api.put(api.path`/api/circles/${circle.id}/archived`, { archived: !circle.archived });
      ctx.reload();
    });
  });
  el.append(
    h('section', { class: 'card', 'aria-labelledby': 'settings-title' }, h('h2', { id: 'settings-title' }, 'Settings'),
      circle.archived ? h('p', { class: 'muted' }, 'The circle is archived.') : settingsForm,
      ctx.isOwner ? h('div', { class: 'row' }, archive) : null),
    applicationFormEditor(ctx));
}

function applicationFormEditor(ctx) {
  const { circle } = ctx;
  const rows = h('ol', { class: 'question-list' });
  const box = h('section', { class: 'card', 'aria-labelledby': 'appform-title' },
    h('h2', { id: 'appform-title' }, 'Application form'),
    h('p', { class: 'muted' }, 'Questions applicants answer when the circle admits by application (at most ten).'), loading());

  const questionRow = (q = { id: '', label: '', kind: 'text', options: [], required: true }) => {
    const label = field({ label: 'Question', name: 'label', value: q.label, required: true, maxlength: 200 });
    const kind = field({ label: 'Answer', name: 'kind', kind: 'select', options: [['text', 'Free text'], ['choice', 'One of several choices']], value: q.kind });
    const options = field({ label: 'Choices (one per line)', name: 'options', kind: 'textarea', rows: 2, value: (q.options ?? []).join('\n') });
    const required = field({ label: 'Required', name: 'required', kind: 'checkbox', value: q.required !== false });
    const syncOptions = () => { options.hidden = valueOf(kind) !== 'choice'; };
    kind.control.addEventListener('change', syncOptions);
    syncOptions();
    const li = h('li', { class: 'question' }, label, kind, options, required,
      h('button', { type: 'button', class: 'link danger', onclick: () => li.remove() }, 'Remove question'));
    li.read = (index) => ({
      id: q.id || `q${index + 1}_${Date.now().toString(36).slice(-4)}`,
      label: valueOf(label), kind: valueOf(kind), required: valueOf(required),
      options: valueOf(kind) === 'choice' ? valueOf(options).split('\n').map((s) => s.trim()).filter(Boolean) : [],
    });
    return li;
  };

  api.get(api.path`/api/circles/${circle.id}/application-form`).then(({ questions }) => {
    rows.append(...questions.map((q) => questionRow(q)));
    const add = h('button', { type: 'button', onclick: () => rows.append(questionRow()) }, 'Add a question');
    box.lastChild.replaceWith(form({
      label: 'Application form', fields: [], extra: [rows, add], submit: 'Save form',
      onSubmit: async () => {
        const questions = [...rows.children].map((li, i) => li.read(i));
        await api.put(api.path`/api/circles/${circle.id}/application-form`, { questions });
        toast('Application form saved.');
      },
    }));
  }).catch((error) => box.lastChild.replaceWith(failure(error)));
  return box;
}

// --- sections ---

function sections(el, ctx) {
  const { circle } = ctx;
  const base = api.path`/api/circles/${circle.id}/sections`;
  const list = h('ol', { class: 'section-list', 'aria-label': 'Sections' });
  const name = field({ label: 'New section name', name: 'name', required: true, maxlength: 60 });
  const add = form({
    label: 'Add a section', fields: [name], submit: 'Add section', className: 'inline-form',
    onSubmit: async () => {
      await api.post(base, { name: valueOf(name) });
      name.control.value = '';
      await refresh();
    },
  });
  el.append(h('section', { class: 'card', 'aria-labelledby': 'sections-title' }, h('h2', { id: 'sections-title' }, 'Sections'),
    h('p', { class: 'muted' }, 'Up to five sections organise the feed. Deleting a section keeps its posts.'), list, add));

  async function refresh() {
    const data = await api.get(base);
    ctx.sections.splice(0, ctx.sections.length, ...data.sections);
    render();
  }

  function render() {
    const ids = ctx.sections.map((s) => s.id);
    const move = (index, delta) => async (event) => act(event.currentTarget, async () => {
      const order = [...ids];
      [order[index], order[index + delta]] = [order[index + delta], order[index]];
      const data = await api.put(`${base}/order`, { section_ids: order });
      ctx.sections.splice(0, ctx.sections.length, ...data.sections);
      render();
    });
    replace(list, ctx.sections.length ? ctx.sections.map((section, index) => {
      const rename = field({ label: `Name of section ${index + 1}`, name: 'name', value: section.name, maxlength: 60 });
      return h('li', { class: 'section-row' }, rename,
        h('div', { class: 'row' },
          h('button', { type: 'button', onclick: (event) => act(event.currentTarget, async () => {
            await api.patch(api.path`/api/circles/${circle.id}/sections/${section.id}`, { name: valueOf(rename) });
            toast('Section renamed.');
            await refresh();
          }) }, 'Rename'),
          h('button', { type: 'button', disabled: index === 0, 'aria-label': `Move ${section.name} up`, onclick: move(index, -1) }, '↑'),
          h('button', { type: 'button', disabled: index === ids.length - 1, 'aria-label': `Move ${section.name} down`, onclick: move(index, 1) }, '↓'),
          h('button', { type: 'button', class: 'danger', onclick: (event) => {
            if (!confirm(`Delete the section ${section.name}? Its posts stay in the feed.`)) return;
            act(event.currentTarget, async () => {
              await api.del(api.path`/api/circles/${circle.id}/sections/${section.id}`);
              await refresh();
            });
          } }, 'Delete')));
    }) : h('li', { class: 'muted' }, 'No sections yet.'));
  }
  render();
}

// --- moderation: announcement mode, bans, audit log ---

function moderation(el, ctx) {
  const { circle } = ctx;
  const names = new Map();
  const who = (id) => (id === null || id === undefined ? 'someone' : names.get(id) ?? `user #${id}`);
  const announce = field({ label: 'Announcement mode: only teachers and admins may post in chat', name: 'announcement', kind: 'checkbox' });
  announce.control.addEventListener('change', () => act(announce.control, async () => {
    try {
      await ctx.hub.call('set_announcement_mode', { circle_id: circle.id, on: announce.control.checked });
      toast(announce.control.checked ? 'Announcement mode is on.' : 'Announcement mode is off.');
    } catch (error) {
      announce.control.checked = !announce.control.checked;
      throw error;
    }
  }));
  const bans = h('div', null, loading());
  const audit = h('div', null, loading());
  el.append(
    h('section', { class: 'card', 'aria-labelledby': 'chat-mod-title' }, h('h2', { id: 'chat-mod-title' }, 'Chat'), announce),
    h('section', { class: 'card', 'aria-labelledby': 'bans-title' }, h('h2', { id: 'bans-title' }, 'Banned'), bans),
    h('section', { class: 'card', 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, 'Audit log'), audit));

  async function loadBans() {
    try {
      const data = await api.get(api.path`/api/circles/${circle.id}/bans`);
      for (const ban of data.bans) names.set(ban.user_id, ban.display_name);
      replace(bans, data.bans.length ? h('ul', { class: 'plain-list' }, data.bans.map((ban) => h('li', { class: 'row' },
        h('span', null, h('strong', null, ban.display_name), ' · ', time(ban.created_at), ban.reason ? ` · ${ban.reason}` : ''),
        h('button', { type: 'button', onclick: (event) => act(event.currentTarget, async () => {
          await api.del(api.path`/api/circles/${circle.id}/bans/${ban.user_id}`);
          toast(`${ban.display_name} may join again.`);
          loadBans();
        }) }, `Unban ${ban.display_name}`)))) : h('p', { class: 'muted' }, 'Nobody is banned.'));
    } catch (error) {
      replace(bans, failure(error, loadBans));
    }
  }

  async function loadAudit() {
    const list = h('ol', { class: 'audit-list', 'aria-label': 'Audit log entries' });
    const more = h('button', { type: 'button', hidden: true }, 'Show older entries');
    let before = null;
    const page = async () => {
      const data = await api.get(api.path`/api/circles/${circle.id}/audit`, { before, limit: 50 });
      list.append(...data.entries.map((entry) => h('li', null, time(entry.created_at), ' ',
        h('strong', null, who(entry.actor_id)), ` ${AUDIT_VERBS[entry.action] ?? humanize(entry.action).toLowerCase()}`,
        entry.target_user_id ? [' ', h('strong', null, who(entry.target_user_id))] : null,
        entry.details && entry.details.reason ? ` (${entry.details.reason})` : '')));
      before = data.next_before;
      more.hidden = !before;
      return data.entries.length;
    };
    more.addEventListener('click', () => act(more, page));
    try {
      for (const m of await fetchRoster(circle.id)) names.set(m.user_id, shownName(m));
      const count = await page();
      replace(audit, count ? [list, more] : h('p', { class: 'muted' }, 'Nothing logged yet.'));
    } catch (error) {
      replace(audit, failure(error, loadAudit));
    }
  }
  loadBans().then(loadAudit);
}
