// A class's polls over HTTP: teachers prepare them before the class (and see live results); everyone sees results
// once a poll is closed. Opening, answering and closing during the class travel over the hub (the live room).

import { h, humanize, replace } from '../dom.js';
import * as api from '../api.js';
import { badge, emptyState, failure, field, form, loading, toast, valueOf } from '../ui.js';

export function pollResults(poll) {
  const results = poll.state === 'draft' ? null : poll.results;
  const total = results ? Math.max(results.answered, 1) : 1;
  return h('ol', { class: 'poll-options', 'aria-label': `Options of: ${poll.question}` }, poll.options.map((option, i) => {
    const count = results ? results.counts[i] ?? 0 : null;
    const correct = poll.correct?.includes(i);
    const mine = poll.my_answer?.includes(i);
    return h('li', { class: ['poll-option', correct ? 'correct' : '', mine ? 'mine' : ''].join(' ').trim() },
      h('span', null, option, correct ? ' ✓' : '', mine ? ' (your answer)' : ''),
      count === null ? null : h('span', { class: 'poll-bar', style: `--share:${Math.round((count / total) * 100)}%` },
        h('span', { class: 'muted' }, `${count} (${Math.round((count / total) * 100)}%)`)));
  }));
}

export function pollCard(poll) {
  return h('li', { class: 'poll card', dataset: { pollId: poll.id } },
    h('p', null, h('strong', null, poll.question), ' ', badge(humanize(poll.state)), poll.multiple ? ' ' : null,
      poll.multiple ? badge('Several answers') : null),
    pollResults(poll),
    poll.results && poll.state !== 'draft' ? h('p', { class: 'muted' }, `${poll.results.answered} answered`,
      poll.results.correct_answers !== null && poll.results.correct_answers !== undefined
        ? ` · ${poll.results.correct_answers} correct` : '') : null);
}

/** The list of a class's polls, and for its teachers the form to prepare one. */
export function mount(el, { lesson, isTeacher }) {
  const list = h('div', null, loading());
  const question = field({ label: 'Question', name: 'question', required: true, maxlength: 300 });
  const options = field({ label: 'Options (one per line)', name: 'options', kind: 'textarea', rows: 4, required: true });
  const multiple = field({ label: 'Several answers allowed', name: 'multiple', kind: 'checkbox' });
  const correct = field({ label: 'Correct options (numbers, optional)', name: 'correct', placeholder: 'e.g. 2 or 1, 3',
    hint: 'Makes it a quiz: students see the answer once the poll is closed.' });
  const prepare = form({
    label: 'Prepare a poll', fields: [question, options, multiple, correct], submit: 'Add poll',
    onSubmit: async () => {
      const picked = valueOf(correct).split(/[\s,]+/).filter(Boolean).map((n) => Number(n) - 1);
      await api.post(api.path`/api/classes/${lesson.id}/polls`, {
        question: valueOf(question), multiple: valueOf(multiple),
        options: valueOf(options).split('\n').map((o) => o.trim()).filter(Boolean),
        correct: picked.length ? picked : null,
      });
      question.control.value = '';
      options.control.value = '';
      correct.control.value = '';
      toast('Poll added.');
      load();
    },
  });
  const section = h('section', { class: 'card', 'aria-labelledby': 'polls-title' },
    h('h2', { id: 'polls-title' }, 'Polls'), list,
    isTeacher && lesson.state !== 'ended' && lesson.state !== 'cancelled'
      ? h('details', { class: 'prepare-poll' }, h('summary', null, 'Prepare a poll'), prepare) : null);
  el.append(section);

  async function load() {
    replace(list, loading());
    try {
      const { polls } = await api.get(api.path`/api/classes/${lesson.id}/polls`);
      replace(list, polls.length ? h('ul', { class: 'poll-list', 'aria-label': 'Polls' }, polls.map(pollCard))
        : emptyState(isTeacher ? 'No poll prepared yet.' : 'No poll yet.'));
    } catch (error) {
      replace(list, failure(error, load));
    }
  }
  load();
  return { unmount: () => section.remove() };
}
