// The attendance report of a class (its teachers and the circle's admins): who was present, late, left early or
// absent, for how long, and the CSV download.

import { h, humanize, replace, time } from '../dom.js';
import * as api from '../api.js';
import { badge, failure, loading } from '../ui.js';

const STATUS_KIND = { present: 'ok', late: 'warn', left_early: 'warn', absent: '' };

function table(caption, lines) {
  return h('table', { class: 'attendance' },
    h('caption', null, caption),
    h('thead', null, h('tr', null, ['Name', 'Status', 'Minutes', 'Share', 'First joined', 'Last left'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, lines.map((line) => h('tr', null,
      h('th', { scope: 'row' }, line.name),
      h('td', null, badge(humanize(line.status), STATUS_KIND[line.status] ?? '')),
      h('td', null, String(Math.round(line.attended_minutes))),
      h('td', null, `${Math.round(line.share * 100)}%`),
      h('td', null, line.first_join ? time(line.first_join) : '—'),
      h('td', null, line.last_leave ? time(line.last_leave) : '—')))));
}

export function mount(el, { lesson }) {
  const box = h('section', { class: 'card', 'aria-labelledby': 'attendance-title' },
    h('div', { class: 'page-head' }, h('h2', { id: 'attendance-title' }, 'Attendance'),
      h('a', { class: 'button', href: api.path`/api/classes/${lesson.id}/attendance.csv`, download: `attendance-${lesson.id}.csv` },
        'Download CSV')),
    loading());
  el.append(box);
  const load = async () => {
    try {
      const report = await api.get(api.path`/api/classes/${lesson.id}/attendance`);
      const counts = Object.entries(report.counts ?? {}).map(([status, n]) => `${humanize(status)}: ${n}`).join(' · ');
      box.lastChild.replaceWith(h('div', { class: 'stack' },
        h('p', { class: 'muted' }, classLength(report), counts ? ` · ${counts}` : ''),
        h('div', { class: 'table-scroll' }, table('Students', report.students)),
        report.teachers.length ? h('div', { class: 'table-scroll' }, table('Teachers', report.teachers)) : null));
    } catch (error) {
      box.lastChild.replaceWith(failure(error, load));
    }
  };
  load();
  return { reload: () => { replace(box, box.firstChild, loading()); load(); } };
}

// Shares are of the class as it ran; say so when that differs from the schedule.
function classLength(report) {
  const scheduled = Math.round(report.scheduled_minutes);
  const ran = Math.round(report.measured_minutes ?? report.scheduled_minutes);
  return ran === scheduled ? `${scheduled} minutes` : `Ran ${ran} of ${scheduled} scheduled minutes`;
}
