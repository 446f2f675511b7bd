"""Polls and quizzes in rooms/polls.py, table by table, and a hypothesis property of the results."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooms.errors import Conflict, DomainError, InvalidInput
from rooms.polls import MAX_OPTIONS, Poll, PollResults, PollState

DRAFT, OPEN, CLOSED = PollState.DRAFT, PollState.OPEN, PollState.CLOSED
ABC = ["a", "b", "c"]


def open_poll(multiple: bool = False, correct: frozenset[int] | None = None, options: list[str] | None = None) -> Poll:
    poll = Poll("which?", list(options or ABC), multiple=multiple, correct=correct)
    poll.open()
    return poll


def refused(poll: Poll, code: str, call: Callable[[], object], kind: type[DomainError]) -> None:
    """``call()`` raises ``kind`` with ``code`` and the poll's state and answers are as they were."""
    before = (poll.state, dict(poll.answers))
    with pytest.raises(kind) as caught:
        call()
    assert caught.value.instance_code == code
    assert (poll.state, poll.answers) == before


# --- building a poll ---


@pytest.mark.parametrize(("options", "ok"), [
    ([], False),
    (["only"], False),
    (["a", "b"], True),
    ([str(i) for i in range(MAX_OPTIONS)], True),
    ([str(i) for i in range(MAX_OPTIONS + 1)], False),
    (["a", "a"], False),  # duplicates
    (["a", "b", "a"], False),
    (["a", "A"], True),  # case makes them differ
])
def test_option_count_and_duplicates(options: list[str], ok: bool) -> None:
    if ok:
        poll = Poll("q", options)
        assert poll.state is DRAFT
        assert poll.answers == {}
    else:
        with pytest.raises(InvalidInput) as caught:
            Poll("q", options)
        assert caught.value.instance_code == "poll_options"


@pytest.mark.parametrize(("multiple", "correct", "ok"), [
    (False, None, True),  # an opinion poll
    (True, None, True),
    (False, frozenset({0}), True),
    (False, frozenset({2}), True),
    (False, frozenset({0, 1}), False),  # a single-choice quiz has one right answer
    (False, frozenset(), False),
    (False, frozenset({3}), False),  # no such option
    (False, frozenset({-1}), False),
    (True, frozenset({1}), True),
    (True, frozenset({0, 2}), True),
    (True, frozenset({0, 1, 2}), True),
    (True, frozenset(), False),
    (True, frozenset({0, 3}), False),
    (True, frozenset({-1, 0}), False),
])
def test_correct_answer_validation(multiple: bool, correct: frozenset[int] | None, ok: bool) -> None:
    if ok:
        assert Poll("q", ABC, multiple=multiple, correct=correct).correct == correct
    else:
        with pytest.raises(InvalidInput) as caught:
            Poll("q", ABC, multiple=multiple, correct=correct)
        assert caught.value.instance_code == "poll_correct"


# --- state ---


@pytest.mark.parametrize(("history", "action", "expected"), [
    ([], "open", OPEN),
    (["open"], "close", CLOSED),
    ([], "close", "poll_not_open"),
    (["open"], "open", "poll_not_draft"),
    (["open", "close"], "open", "poll_not_draft"),  # a closed poll is not reopened
    (["open", "close"], "close", "poll_not_open"),
])
def test_state_transitions(history: list[str], action: str, expected: PollState | str) -> None:
    poll = Poll("q", ABC)
    for step in history:
        getattr(poll, step)()
    if isinstance(expected, PollState):
        getattr(poll, action)()
        assert poll.state is expected
    else:
        refused(poll, expected, getattr(poll, action), Conflict)


# --- answering ---


@pytest.mark.parametrize(("multiple", "choice", "expected"), [
    (False, [1], frozenset({1})),
    (False, [0], frozenset({0})),
    (False, [], "poll_choice"),  # exactly one
    (False, [0, 1], "poll_choice"),
    (False, [1, 1], "poll_choice"),
    (False, [3], "poll_choice"),  # out of range
    (False, [-1], "poll_choice"),
    (True, [0], frozenset({0})),
    (True, [0, 2], frozenset({0, 2})),
    (True, [2, 1, 0], frozenset({0, 1, 2})),
    (True, [], "poll_choice"),  # at least one
    (True, [0, 0], "poll_choice"),  # each once
    (True, [1, 2, 1], "poll_choice"),
    (True, [0, 3], "poll_choice"),
    (True, [-1, 0], "poll_choice"),
    (True, [10], "poll_choice"),
])
def test_answer(multiple: bool, choice: list[int], expected: frozenset[int] | str) -> None:
    poll = open_poll(multiple=multiple)
    if isinstance(expected, frozenset):
        assert poll.answer(7, choice) == expected
        assert poll.answers == {7: expected}
    else:
        refused(poll, expected, lambda: poll.answer(7, choice), InvalidInput)


def test_answer_takes_any_iterable_once() -> None:
    poll = open_poll(multiple=True)
    assert poll.answer(7, (i for i in (2, 0))) == frozenset({0, 2})
    assert poll.answer(8, range(3)) == frozenset({0, 1, 2})


@pytest.mark.parametrize("second", [[2], [0], [], [9]])
def test_one_answer_per_user_and_the_first_one_stays(second: list[int]) -> None:
    poll = open_poll()
    poll.answer(7, [1])
    refused(poll, "already_answered", lambda: poll.answer(7, second), Conflict)  # checked before the choice
    assert poll.answers[7] == frozenset({1})
    poll.answer(8, [2])  # others still may
    assert poll.results().counts == [0, 1, 1]


@pytest.mark.parametrize("history", [[], ["open", "close"]])
def test_answering_needs_an_open_poll(history: list[str]) -> None:
    poll = Poll("q", ABC)
    for step in history:
        getattr(poll, step)()
    refused(poll, "poll_not_open", lambda: poll.answer(7, [0]), Conflict)


def test_closing_keeps_the_answers() -> None:
    poll = open_poll()
    poll.answer(7, [0])
    poll.close()
    assert poll.answers == {7: frozenset({0})}
    assert poll.results() == PollResults(counts=[1, 0, 0], answered=1, correct_answers=None)


# --- results ---


@pytest.mark.parametrize(("multiple", "correct", "answers", "expected"), [
    (False, None, {}, PollResults([0, 0, 0], 0, None)),
    (False, None, {1: [0], 2: [0], 3: [2]}, PollResults([2, 0, 1], 3, None)),  # opinion poll: nobody is right
    (False, frozenset({1}), {}, PollResults([0, 0, 0], 0, 0)),  # a quiz nobody answered: 0, not None
    (False, frozenset({1}), {1: [1], 2: [0], 3: [1]}, PollResults([1, 2, 0], 3, 2)),
    (True, None, {1: [0, 1], 2: [1, 2], 3: [1]}, PollResults([1, 3, 1], 3, None)),
    # a multiple-choice quiz counts exact sets: a subset or a superset of the right answer is wrong
    (True, frozenset({0, 2}), {1: [0, 2], 2: [0], 3: [0, 1, 2], 4: [2, 0], 5: [1]},
     PollResults([4, 2, 3], 5, 2)),
    (True, frozenset({1}), {1: [1], 2: [1, 2]}, PollResults([0, 2, 1], 2, 1)),
])
def test_results(
    multiple: bool, correct: frozenset[int] | None, answers: dict[int, list[int]], expected: PollResults,
) -> None:
    poll = open_poll(multiple=multiple, correct=correct)
    for user_id, choice in answers.items():
        poll.answer(user_id, choice)
    assert poll.results() == expected


@st.composite
def polls_with_answers(draw: st.DrawFn) -> tuple[Poll, list[tuple[int, list[int]]]]:
    size = draw(st.integers(2, MAX_OPTIONS))
    multiple = draw(st.booleans())
    indexes = st.integers(0, size - 1)
    quiz = st.frozensets(indexes, min_size=1) if multiple else indexes.map(lambda i: frozenset({i}))
    correct = draw(st.none() | quiz)
    choice = st.lists(indexes, min_size=1, unique=True) if multiple else indexes.map(lambda i: [i])
    attempts = draw(st.lists(st.tuples(st.integers(1, 15), choice), max_size=40))  # users repeat: refused
    return open_poll(multiple=multiple, correct=correct, options=[f"option {i}" for i in range(size)]), attempts


@settings(max_examples=200)
@given(polls_with_answers())
def test_results_add_up(case: tuple[Poll, list[tuple[int, list[int]]]]) -> None:
    poll, attempts = case
    first: dict[int, list[int]] = {}
    for user_id, choice in attempts:
        if user_id in first:
            with pytest.raises(Conflict):
                poll.answer(user_id, choice)
        else:
            poll.answer(user_id, choice)
            first[user_id] = choice
    results = poll.results()
    assert len(results.counts) == len(poll.options)
    assert sum(results.counts) == sum(len(choice) for choice in first.values())
    assert results.answered == len(first) == len({user_id for user_id, _ in attempts})
    assert all(0 <= count <= results.answered for count in results.counts)
    if poll.correct is None:
        assert results.correct_answers is None
    else:
        assert results.correct_answers == sum(1 for choice in first.values() if set(choice) == poll.correct)

