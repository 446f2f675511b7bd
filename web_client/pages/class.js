// A class's page (#/classes/<id>): what it is and when; before it, the polls its teachers prepare; while it is
// live, the live room; afterwards its attendance report, poll results and the recap in the circle's feed.
//
// The live room is a module of its own, registered with setLiveRoom(): it gets the same context and owns the
// video grid, the hub's class events and the media signalling.

import { h, replace } from '../dom.js';
import * as api from '../api.js';
import * as session from '../session.js';
import { act, failure, loading, toast } from '../ui.js';
import { abilities } from '../circle/tabs.js';
import { classTimes, MEDIA, stateBadge } from '../circle/classes.js';
import * as polls from '../class/polls.js';
import * as attendance from '../class/attendance.js';

let liveRoom = null;

/** Plug in the live room: {mount(el, ctx) -> {unmount()}}. */
export function setLiveRoom(room) {
  liveRoom = room;
}

export function key(params) {
  return params.id;
}

export function mount(outlet, route) {
  const classId = route.params.id;
  const root = h('div', { class: 'class-page' }, loading());
  outlet.append(root);
  let mounted = [];
  let disposed = false;

  const unmountParts = () => {
    for (const part of mounted) part?.unmount?.();
    mounted = [];
  };

  async function load() {
    unmountParts();
    replace(root, loading());
    let lesson;
    let circle;
    try {
      lesson = await api.get(api.path`/api/classes/${classId}`);
      circle = await api.get(api.path`/api/circles/${lesson.circle_id}`);
    } catch (error) {
      if (!disposed) replace(root, failure(error, load));
      return;
    }
    if (disposed) return;
    const me = session.me();
    const can = abilities(circle.my_role);
    const isTeacher = lesson.teacher_ids.includes(me.id) || can.isAdmin;
    const ctx = { lesson, circle, me, isTeacher, ...can, reload: load };
    render(ctx);
  }

  function render(ctx) {
    const { lesson, circle } = ctx;
    const circleHref = `#/circles/${encodeURIComponent(circle.id)}`;
    const settings = lesson.settings;
    const may = MEDIA.filter(([value]) => settings.students_may.includes(value)).map(([, label]) => label.toLowerCase());
    const body = h('div', { class: 'class-body stack' });
    const head = h('header', { class: 'class-head' },
      h('p', { class: 'eyebrow' }, h('a', { href: `${circleHref}/classes` }, circle.name), ' · class'),
      h('h1', null, lesson.title),
      h('p', { class: 'badges' }, stateBadge(lesson), ' ', h('span', { class: 'muted' }, classTimes(lesson))),
      lesson.description ? h('p', { class: 'class-description' }, lesson.description) : null,
      h('p', { class: 'muted' }, settings.lobby ? 'Students wait in a lobby until a teacher admits them. ' : '',
        settings.mute_on_entry ? 'Students join muted. ' : '',
        may.length ? `Students may use their ${may.join(', ')}.` : 'Students use media only when a teacher allows it.'));
    replace(root, head, body);

    const roomOpen = lesson.state === 'scheduled' || lesson.state === 'live';
    if (roomOpen && liveRoom) {
      const slot = h('div', { class: 'live-room-slot' });
      body.append(slot);
      mounted.push(liveRoom.mount(slot, ctx));
    } else if (lesson.state === 'scheduled') {
      body.append(h('p', { class: 'card notice' }, 'This class has not started yet.'));
    } else if (lesson.state === 'live') {
      body.append(h('p', { class: 'card notice', role: 'status' }, 'This class is live.'));
    }
    const cancel = lesson.state === 'scheduled' && ctx.isTeacher ? cancelButton(ctx) : null;
    if (cancel) body.append(cancel);
    if (lesson.state === 'cancelled') body.append(h('p', { class: 'card notice' }, 'This class was cancelled.'));
    if (lesson.state === 'ended') {
      body.append(h('p', { class: 'card notice' }, 'This class has ended. ',
        lesson.recap_post_id ? h('a', { href: circleHref }, 'Read the recap in the circle’s feed') : null));
      if (ctx.isTeacher || ctx.isAdmin) mounted.push(attendance.mount(body, ctx));
    }
    // Before the class (and after it) the prepared polls are listed here; once it is live the room's poll panel
    // takes over, and the header follows the room's phase.
    if (lesson.state !== 'live') {
      const prepared = polls.mount(body, ctx);
      mounted.push(prepared);
      ctx.onPhase = (phase) => {
        if (phase !== 'live') return;
        prepared.unmount();
        cancel?.remove();  // a live class is ended, not cancelled
        head.querySelector('.badge')?.replaceWith(stateBadge({ ...lesson, state: 'live' }));
      };
    }
  }

  function cancelButton(ctx) {
    const button = h('button', { type: 'button', class: 'danger' }, 'Cancel class');
    button.addEventListener('click', () => {
      if (!confirm('Cancel this class? Students see it as cancelled.')) return;
      act(button, async () => {
        await api.post(api.path`/api/classes/${ctx.lesson.id}/cancel`);
        toast('Class cancelled.');
        load();
      });
    });
    return h('div', { class: 'row' }, button);
  }

  load();
  return {
    update() {},
    unmount() {
      disposed = true;
      unmountParts();
    },
  };
}
