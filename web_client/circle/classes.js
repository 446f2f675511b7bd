// The circle's class schedule: upcoming and past classes, and for its teachers and admins the form that
// schedules one. Each class links to its page (#/classes/<id>).

import { append, h, humanize, replace, time } from '../dom.js';
import * as api from '../api.js';
import * as router from '../router.js';
import { act, badge, emptyState, failure, field, form, loading, valueOf } from '../ui.js';

export const MEDIA = [['microphone', 'Microphone'], ['camera', 'Camera'], ['screen', 'Screen sharing']];

export function classTimes(lesson) {
  return [time(lesson.starts_at), ' – ', h('time', { datetime: lesson.ends_at },
    new Date(lesson.ends_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))];
}

export function stateBadge(lesson) {
  const kinds = { live: 'live', scheduled: 'role', ended: '', cancelled: 'warn' };
  return badge(lesson.state === 'live' ? 'Live now' : humanize(lesson.state), kinds[lesson.state] ?? '');
}

/** May schedule classes here: the circle's teachers, admins and owner. */
export function maySchedule(ctx) {
  return ctx.isModerator && !ctx.circle.archived;
}

export function mount(el, ctx) {
  const upcoming = h('div', null, loading());
  const past = h('div', null, loading());
  append(el, [
    maySchedule(ctx) ? scheduleForm(ctx) : null,
    h('section', { class: 'card', 'aria-labelledby': 'upcoming-title' }, h('h2', { id: 'upcoming-title' }, 'Upcoming classes'), upcoming),
    h('section', { class: 'card', 'aria-labelledby': 'past-title' }, h('h2', { id: 'past-title' }, 'Past classes'), past),
  ]);
  classList(upcoming, ctx, 'upcoming', 'No class is scheduled.');
  classList(past, ctx, 'past', 'No class has taken place yet.');
}

/** A strip on the circle page while one of its classes is live: the way in. Empty otherwise. */
export function liveNow(ctx) {
  const strip = h('div', { class: 'live-now', role: 'status', hidden: true });
  if (!ctx.isMember) return strip;
  api.get(api.path`/api/circles/${ctx.circle.id}/classes`, { when: 'upcoming', limit: 10 }).then(({ classes }) => {
    const live = classes.filter((lesson) => lesson.state === 'live');
    if (!live.length) return;
    replace(strip, live.map((lesson) => h('p', null, badge('Live now', 'live'), ' ', lesson.title, ' ',
      h('a', { class: 'button primary', href: `#/classes/${lesson.id}` }, `Join ${lesson.title}`))));
    strip.hidden = false;
  }).catch(() => {});
  return strip;
}

function classList(box, ctx, when, emptyText) {
  const list = h('ul', { class: 'class-list', 'aria-label': when === 'upcoming' ? 'Upcoming classes' : 'Past classes' });
  const more = h('button', { type: 'button', hidden: true }, 'Show more');
  let cursor = null;
  const page = async () => {
    const data = await api.get(api.path`/api/circles/${ctx.circle.id}/classes`, { when, cursor, limit: 20 });
    list.append(...data.classes.map((lesson) => classItem(lesson)));
    cursor = data.next_cursor;
    more.hidden = !cursor;
    return data.classes.length;
  };
  more.addEventListener('click', () => act(more, page));
  const load = async () => {
    try {
      const count = await page();
      replace(box, count ? [list, more] : emptyState(emptyText));
    } catch (error) {
      replace(box, failure(error, load));
    }
  };
  load();
}

function classItem(lesson) {
  return h('li', { class: `class-item state-${lesson.state}` },
    h('div', null,
      h('h3', null, h('a', { href: `#/classes/${lesson.id}` }, lesson.title)),
      h('p', { class: 'muted' }, classTimes(lesson))),
    stateBadge(lesson));
}

function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function scheduleForm(ctx) {
  const soon = new Date(Date.now() + 60 * 60 * 1000);
  soon.setMinutes(0, 0, 0);
  const title = field({ label: 'Class title', name: 'title', required: true, maxlength: 200 });
  const description = field({ label: 'What the class covers', name: 'description', kind: 'textarea', rows: 2, maxlength: 4000 });
  const starts = field({ label: 'Starts', name: 'starts_at', kind: 'datetime-local', required: true, value: localInputValue(soon) });
  const minutes = field({ label: 'Length (minutes)', name: 'minutes', kind: 'number', value: 60, min: 5, max: 600, required: true });
  const lobby = field({ label: 'Lobby: teachers admit students', name: 'lobby', kind: 'checkbox' });
  const muted = field({ label: 'Students start muted', name: 'mute_on_entry', kind: 'checkbox', value: true });
  const media = MEDIA.map(([value, label]) => field({ label, name: `may_${value}`, kind: 'checkbox', value: value === 'microphone' }));
  const late = field({ label: 'Late after (minutes)', name: 'late_after_minutes', kind: 'number', value: 10, min: 0, max: 240 });
  const present = field({ label: 'Present from (% of the class)', name: 'present_percent', kind: 'number', value: 85, min: 1, max: 100 });
  const mediaSet = h('fieldset', null, h('legend', null, 'Students may use, without asking'), media);
  const rules = h('fieldset', null, h('legend', null, 'Attendance'), h('div', { class: 'row' }, late, present));
  const scheduled = form({
    label: 'Schedule a class', fields: [title, description, starts, minutes, lobby, muted, ...media, late, present],
    submit: 'Schedule class',
    onSubmit: async () => {
      const start = new Date(starts.control.value);
      const end = new Date(start.getTime() + (valueOf(minutes) ?? 60) * 60 * 1000);
      const lesson = await api.post(api.path`/api/circles/${ctx.circle.id}/classes`, {
        title: valueOf(title), description: valueOf(description),
        starts_at: start.toISOString(), ends_at: end.toISOString(),
        settings: {
          lobby: valueOf(lobby), mute_on_entry: valueOf(muted),
          students_may: MEDIA.map(([value]) => value).filter((_, i) => valueOf(media[i])),
          late_after_minutes: valueOf(late) ?? 10, present_percent: valueOf(present) ?? 85,
        },
      });
      router.navigate(`/classes/${lesson.id}`);
    },
  });
  // The form's own fields stay in order; the grouped ones move into their fieldsets.
  scheduled.insertBefore(h('div', { class: 'row' }, starts, minutes), scheduled.error);
  scheduled.insertBefore(h('fieldset', null, h('legend', null, 'Room'), lobby, muted), scheduled.error);
  scheduled.insertBefore(mediaSet, scheduled.error);
  scheduled.insertBefore(rules, scheduled.error);
  return h('details', { class: 'card schedule' }, h('summary', null, 'Schedule a class'), scheduled);
}
