"""Attendance from what the server observes: intervals per student, merged, measured against the schedule.

Times are seconds (any epoch, as long as one session uses one). Intervals of one student merge across rejoins and
devices; a reconnect within the grace period leaves no gap. Pure functions: the report queries the database for the
intervals and calls these per student.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_GRACE_SECONDS = 30.0


class Status(enum.StrEnum):
    PRESENT = "present"
    LATE = "late"
    LEFT_EARLY = "left_early"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"an interval cannot end ({self.end}) before it starts ({self.start})")

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Rule:
    """When a student counts as present: arrived within ``late_after`` seconds of the start, and attended at least
    ``present_share`` of the scheduled time."""

    present_share: float = 0.85
    late_after: float = 10 * 60.0

    def __post_init__(self) -> None:
        if not 0.0 < self.present_share <= 1.0:
            raise ValueError("present_share must be in (0, 1]")
        if self.late_after < 0:
            raise ValueError("late_after must not be negative")


@dataclass(frozen=True, slots=True)
class Record:
    first_join: float | None
    last_leave: float | None
    attended_seconds: float
    share: float  # of the scheduled time, 0..1
    status: Status


def merge(intervals: Iterable[Interval], grace: float = DEFAULT_GRACE_SECONDS) -> list[Interval]:
    """Overlapping intervals (two devices) and gaps of at most ``grace`` seconds (a reconnect) become one."""
    if grace < 0:
        raise ValueError("grace must not be negative")
    merged: list[Interval] = []
    for interval in sorted(intervals):
        if merged and interval.start - merged[-1].end <= grace:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """The parts of ``intervals`` inside [start, end]."""
    return [Interval(max(i.start, start), min(i.end, end)) for i in intervals if i.end > start and i.start < end]


@dataclass(frozen=True, slots=True)
class Window:
    """The time a class's register measures: when the class really ran, or its schedule while it has not started.

    A teacher who starts ten minutes early or ends twenty minutes early changes what "the whole class" was, so the
    share is of ``[start, end]``. Lateness counts from the later of the scheduled and the actual start: nobody is late
    for a class that started early, or for one the teacher opened late."""

    start: float
    end: float
    late_from: float


def window(
    scheduled_start: float, scheduled_end: float, started: float | None, ended: float | None, now: float
) -> Window:
    if started is None:
        return Window(scheduled_start, scheduled_end, scheduled_start)
    end = ended if ended is not None else max(now, started)
    if end <= started:
        end = started + 1.0  # ended within the second it started: keep the window well-formed
    return Window(started, end, max(started, scheduled_start))


def record(
    intervals: Iterable[Interval], scheduled_start: float, scheduled_end: float, rule: Rule,
    grace: float = DEFAULT_GRACE_SECONDS, late_from: float | None = None,
) -> Record:
    """One student's line in the report. Time outside ``[scheduled_start, scheduled_end]`` (the class's
    ``Window``) does not count towards the share; lateness counts from ``late_from`` (default: the start)."""
    if scheduled_end <= scheduled_start:
        raise ValueError("a session must end after it starts")
    merged = merge(intervals, grace)
    if not merged:
        return Record(None, None, 0.0, 0.0, Status.ABSENT)
    # An instant inside (connected and gone at once) is no arrival, as in the database's register.
    inside = [i for i in clip(merged, scheduled_start, scheduled_end) if i.seconds > 0]
    attended = sum(i.seconds for i in inside)
    return summarise(merged[0].start, merged[-1].end, inside[0].start if inside else None, attended,
                     scheduled_start, scheduled_end, rule, late_from)


def summarise(
    first_join: float | None, last_leave: float | None, first_inside: float | None, attended: float,
    scheduled_start: float, scheduled_end: float, rule: Rule, late_from: float | None = None,
) -> Record:
    """A student's line from aggregates of their merged intervals (as the database computes them for a report):
    the first arrival inside the window and the seconds attended inside it."""
    if scheduled_end <= scheduled_start:
        raise ValueError("a session must end after it starts")
    share = min(1.0, attended / (scheduled_end - scheduled_start))
    late_after = (scheduled_start if late_from is None else late_from) + rule.late_after
    if first_inside is None or attended <= 0:
        status = Status.ABSENT
    elif first_inside > late_after:  # a look-in before the start does not make one punctual
        status = Status.LATE
    elif share >= rule.present_share:
        status = Status.PRESENT
    else:
        status = Status.LEFT_EARLY
    return Record(first_join, last_leave, attended, share, status)
