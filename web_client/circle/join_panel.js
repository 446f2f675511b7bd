// What a visitor who is not a member sees beside the circle's name: join, apply (with the circle's form and the
// status of their application), or how to get an invite.

import { h, humanize, replace, time } from '../dom.js';
import * as api from '../api.js';
import * as session from '../session.js';
import { act, field, form, loading, valueOf } from '../ui.js';

export function joinPanel(ctx) {
  const { circle } = ctx;
  const box = h('aside', { class: 'card join-panel', 'aria-label': 'Join this circle' });
  const here = `/circles/${encodeURIComponent(circle.id)}`;
  if (!session.me()) {
    box.append(h('p', null, 'Sign in to join this circle.'),
      h('a', { class: 'button primary', href: `#/signin?next=${encodeURIComponent(here)}` }, 'Sign in'));
    return box;
  }
  if (circle.archived) {
    box.append(h('p', null, 'This circle is archived and takes no new members.'));
  } else if (circle.join_policy === 'open') {
    const join = h('button', { type: 'button', class: 'primary' }, 'Join circle');
    join.addEventListener('click', () => act(join, async () => {
      await api.post(api.path`/api/circles/${circle.id}/join`);
      ctx.reload();
    }));
    box.append(h('p', null, 'Anyone may join this circle.'), join);
  } else if (circle.join_policy === 'application') {
    box.append(loading());
    showApplication(box, ctx);
  } else {
    box.append(h('p', null, 'This circle admits members by invite only. Ask one of its teachers or admins for a link.'));
  }
  return box;
}

async function showApplication(box, ctx) {
  const { circle } = ctx;
  const [{ questions }, { applications }] = await Promise.all([
    api.get(api.path`/api/circles/${circle.id}/application-form`),
    api.get(api.path`/api/circles/${circle.id}/applications/mine`),
  ]).catch((error) => {
    replace(box, h('p', { role: 'alert' }, error.message));
    return [{ questions: [] }, { applications: null }];
  });
  if (applications === null) return;
  const latest = applications.length ? applications[applications.length - 1] : null;
  const pending = applications.find((a) => a.status === 'pending');
  const status = latest ? applicationStatus(pending ?? latest) : null;
  if (pending) {
    replace(box, status);
    return;
  }
  const fields = questions.map((q) => field({
    label: q.label, name: q.id, kind: q.kind === 'choice' ? 'select' : 'textarea', required: q.required !== false,
    options: q.kind === 'choice' ? [['', 'Choose…'], ...q.options] : [], rows: 2, maxlength: 2000,
  }));
  replace(box, status, h('h2', null, 'Apply to join'), form({
    label: 'Application', fields, submit: 'Send application',
    onSubmit: async () => {
      const answers = {};
      for (const wrapper of fields) if (valueOf(wrapper)) answers[wrapper.control.name] = valueOf(wrapper);
      await api.post(api.path`/api/circles/${circle.id}/applications`, { answers });
      await showApplication(box, ctx);
    },
  }));
}

function applicationStatus(application) {
  const text = {
    pending: 'Your application is waiting for review.',
    approved: 'Your application was approved.',
    rejected: 'Your application was rejected.',
  }[application.status] ?? humanize(application.status);
  return h('div', { class: `application-status status-${application.status}`, role: 'status' },
    h('p', null, h('strong', null, `Application: ${humanize(application.status)}`), ' · ', time(application.created_at)),
    h('p', null, text),
    application.reason ? h('p', null, 'Reason: ', application.reason) : null);
}
