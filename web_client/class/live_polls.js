// Polls in the live room. Students answer the open poll and see the results once it closes; teachers and
// assistants see every poll of the class with live results, open and close them, and add one on the spot.

import { h, replace } from '../dom.js';
import * as api from '../api.js';
import { act, badge, field, form, toast, valueOf } from '../ui.js';
import { pollResults } from './polls.js';

export function pollPanel({ hub, classId, state, lesson }) {
  const el = h('section', { class: 'card room-panel', 'aria-labelledby': `live-polls-${classId}` });
  let loaded = false;

  const call = (event, payload) => hub.call(event, { class_id: classId, ...payload }).then((ack) => {
    if (ack.poll) state.pollSeen(ack.poll);
    render();
    return ack;
  });

  async function loadAll() {
    if (loaded || !state.isStaff) return;
    loaded = true;
    try {
      const { polls } = await api.get(api.path`/api/classes/${lesson.id}/polls`);
      for (const poll of polls) state.polls.set(poll.id, poll);
      render();
    } catch (error) {
      loaded = false;
      toast(error.message, 'error');
    }
  }

  function studentView() {
    const poll = state.poll;
    if (!poll) return h('p', { class: 'muted' }, 'No poll is open.');
    if (poll.state === 'closed') {
      return h('div', { class: 'poll-live' }, h('p', null, h('strong', null, poll.question), ' ', badge('Closed')), pollResults(poll));
    }
    if (poll.my_answer) {
      return h('div', { class: 'poll-live' }, h('p', null, h('strong', null, poll.question)), pollResults(poll),
        h('p', { class: 'muted', role: 'status' }, 'Your answer is in. Results come when the poll closes.'));
    }
    const name = `poll-${poll.id}`;
    const choices = poll.options.map((option, i) => {
      const id = `${name}-${i}`;
      return h('div', { class: 'field field-check' },
        h('input', { type: poll.multiple ? 'checkbox' : 'radio', name, id, value: String(i) }),
        h('label', { for: id }, option));
    });
    const answer = form({
      label: `Answer: ${poll.question}`, fields: [], submit: 'Answer',
      extra: [h('fieldset', null, h('legend', null, poll.question), choices)],
      onSubmit: async () => {
        const choice = choices.map((c) => c.querySelector('input')).filter((i) => i.checked).map((i) => Number(i.value));
        if (!choice.length) throw new Error('Choose an answer first.');
        await call('answer_poll', { poll_id: poll.id, choice });
      },
    });
    return answer;
  }

  function staffView() {
    const polls = [...state.polls.values()].sort((a, b) => a.id - b.id);
    const live = state.phase === 'live';
    const question = field({ label: 'New poll question', name: 'question', required: true, maxlength: 500 });
    const options = field({ label: 'Options (one per line)', name: 'options', kind: 'textarea', rows: 3, required: true });
    const create = form({
      label: 'Create a poll', fields: [question, options], submit: 'Create poll',
      onSubmit: async () => {
        await call('create_poll', {
          question: valueOf(question), options: valueOf(options).split('\n').map((o) => o.trim()).filter(Boolean),
        });
        question.control.value = '';
        options.control.value = '';
      },
    });
    const item = (poll) => {
      const tools = [];
      if (poll.state === 'draft' && live) {
        const open = h('button', { type: 'button', class: 'primary' }, `Open poll: ${poll.question}`);
        open.addEventListener('click', () => act(open, () => call('open_poll', { poll_id: poll.id })));
        tools.push(open);
      }
      if (poll.state === 'open') {
        const close = h('button', { type: 'button' }, 'Close poll');
        close.addEventListener('click', () => act(close, () => call('close_poll', { poll_id: poll.id })));
        tools.push(close);
      }
      return h('li', { class: `poll card state-${poll.state}`, dataset: { pollId: poll.id } },
        h('p', null, h('strong', null, poll.question), ' ', badge(poll.state === 'open' ? 'Open' : poll.state === 'draft' ? 'Draft' : 'Closed')),
        poll.state !== 'draft' ? pollResults(poll) : null,
        poll.state !== 'draft' && poll.results ? h('p', { class: 'muted' }, `${poll.results.answered} answered`) : null,
        tools.length ? h('div', { class: 'row' }, tools) : null);
    };
    return [
      polls.length ? h('ul', { class: 'poll-list', 'aria-label': 'Class polls' }, polls.map(item)) : h('p', { class: 'muted' }, 'No poll yet.'),
      h('details', { class: 'prepare-poll' }, h('summary', null, 'Create a poll'), create),
    ];
  }

  function render() {
    if (state.isStaff) loadAll();
    // Before the start, polls are prepared on the class page; observers never answer.
    if (state.role === 'observer' || state.phase !== 'live') {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const open = el.querySelector('details[open]') !== null;
    replace(el, h('h2', { id: `live-polls-${classId}` }, 'Poll'), state.isStaff ? staffView() : studentView());
    if (open) el.querySelector('details')?.setAttribute('open', '');
  }

  return {
    el,
    render,
    opened(poll) {
      if (poll) state.pollSeen(poll);
    },
  };
}
