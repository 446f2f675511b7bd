"""Polls and quizzes in a live class: single or multiple choice, an optional correct answer, one answer each."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from rooms.errors import Conflict, InvalidInput

MAX_OPTIONS = 10


class PollState(enum.StrEnum):
    DRAFT = "draft"  # prepared, not yet shown
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class Poll:
    question: str
    options: list[str]
    multiple: bool = False
    correct: frozenset[int] | None = None  # option indexes; None for an opinion poll
    state: PollState = PollState.DRAFT
    answers: dict[int, frozenset[int]] = field(default_factory=dict)  # user id -> chosen option indexes

    def __post_init__(self) -> None:
        if not 2 <= len(self.options) <= MAX_OPTIONS:
            raise InvalidInput(f"a poll has 2 to {MAX_OPTIONS} options", code="poll_options")
        if len(set(self.options)) != len(self.options):
            raise InvalidInput("options must differ", code="poll_options")
        if self.correct is not None:
            if not self.correct or any(not 0 <= i < len(self.options) for i in self.correct):
                raise InvalidInput("the correct answer must name existing options", code="poll_correct")
            if not self.multiple and len(self.correct) != 1:
                raise InvalidInput("a single-choice quiz has exactly one correct option", code="poll_correct")

    def open(self) -> None:
        if self.state is not PollState.DRAFT:
            raise Conflict(f"this poll is {self.state.value}", code="poll_not_draft")
        self.state = PollState.OPEN

    def close(self) -> None:
        if self.state is not PollState.OPEN:
            raise Conflict(f"this poll is {self.state.value}", code="poll_not_open")
        self.state = PollState.CLOSED

    def answer(self, user_id: int, choice: Iterable[int]) -> frozenset[int]:
        if self.state is not PollState.OPEN:
            raise Conflict("this poll is not open", code="poll_not_open")
        if user_id in self.answers:
            raise Conflict("you have answered already", code="already_answered")
        chosen = list(choice)
        picked = frozenset(chosen)
        if len(picked) != len(chosen) or not picked:
            raise InvalidInput("choose at least one option, each once", code="poll_choice")
        if not self.multiple and len(picked) != 1:
            raise InvalidInput("choose exactly one option", code="poll_choice")
        if any(not 0 <= i < len(self.options) for i in picked):
            raise InvalidInput("no such option", code="poll_choice")
        self.answers[user_id] = picked
        return picked

    def results(self) -> PollResults:
        counts: Counter[int] = Counter(i for choice in self.answers.values() for i in choice)
        right = None if self.correct is None else sum(1 for c in self.answers.values() if c == self.correct)
        return PollResults(counts=[counts.get(i, 0) for i in range(len(self.options))], answered=len(self.answers),
                           correct_answers=right)


@dataclass(frozen=True, slots=True)
class PollResults:
    counts: list[int]  # per option
    answered: int
    correct_answers: int | None  # how many answered exactly the correct set; None for an opinion poll
