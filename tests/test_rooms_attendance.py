"""Attendance in rooms/attendance.py: merging a student's intervals, clipping to the schedule, and their status.

Tables use a session scheduled from 0 to 3600 s with the default rule (present at 85 % of the time, late after 10
minutes) and the default 30 s grace unless a row says otherwise. Hypothesis checks the arithmetic on integer-valued
seconds (exact in floats) and the structure of ``merge`` on arbitrary floats.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rooms.attendance import DEFAULT_GRACE_SECONDS, Interval, Record, Rule, Status, clip, merge, record, summarise

PRESENT, LATE, LEFT_EARLY, ABSENT = Status.PRESENT, Status.LATE, Status.LEFT_EARLY, Status.ABSENT
START, END = 0.0, 3600.0


def spans(*pairs: tuple[float, float]) -> list[Interval]:
    return [Interval(float(a), float(b)) for a, b in pairs]


# --- intervals ---


def test_an_interval_cannot_end_before_it_starts() -> None:
    assert Interval(5.0, 5.0).seconds == 0.0
    assert Interval(-10.0, 20.5).seconds == 30.5
    with pytest.raises(ValueError, match="before it starts"):
        Interval(5.0, 4.9)


# --- merge ---


@pytest.mark.parametrize(("given_spans", "grace", "expected"), [
    ([], 30.0, []),
    ([(0, 100)], 30.0, [(0, 100)]),
    ([(0, 100), (50, 150)], 30.0, [(0, 150)]),  # two devices overlapping
    ([(0, 100), (10, 20)], 30.0, [(0, 100)]),  # a second device inside the first
    ([(0, 100), (0, 100)], 30.0, [(0, 100)]),  # the same interval twice
    ([(0, 100), (120, 200)], 30.0, [(0, 200)]),  # a reconnect within the grace period
    ([(0, 100), (130, 200)], 30.0, [(0, 200)]),  # exactly the grace period
    ([(0, 100), (131, 200)], 30.0, [(0, 100), (131, 200)]),  # beyond it
    ([(0, 100), (100, 200)], 0.0, [(0, 200)]),  # touching, no grace at all
    ([(0, 100), (101, 200)], 0.0, [(0, 100), (101, 200)]),
    ([(0, 100), (120, 200)], 10.0, [(0, 100), (120, 200)]),  # the grace is a parameter
    ([(300, 400), (0, 100), (90, 150)], 30.0, [(0, 150), (300, 400)]),  # unsorted input
    ([(40, 50), (20, 30), (0, 10)], 10.0, [(0, 50)]),  # a chain of reconnects, backwards
    ([(0, 1000), (100, 200), (1020, 1100)], 30.0, [(0, 1100)]),  # the gap is measured from the longest reach
    ([(5, 5), (5, 5), (50, 50)], 30.0, [(5, 5), (50, 50)]),  # zero-length connections
])
def test_merge(given_spans: list[tuple[float, float]], grace: float, expected: list[tuple[float, float]]) -> None:
    assert merge(spans(*given_spans), grace) == spans(*expected)


def test_merge_default_grace() -> None:
    assert DEFAULT_GRACE_SECONDS == 30.0
    assert merge(spans((0, 100), (130, 200))) == spans((0, 200))
    assert merge(spans((0, 100), (131, 200))) == spans((0, 100), (131, 200))


@pytest.mark.parametrize(("given_spans", "start", "end", "expected"), [
    ([(0, 10)], 2, 8, [(2, 8)]),
    ([(0, 10)], -5, 20, [(0, 10)]),
    ([(0, 10)], 10, 20, []),  # touching the window is not inside it
    ([(20, 30)], 10, 20, []),
    ([(0, 10), (15, 20), (30, 40)], 5, 17, [(5, 10), (15, 17)]),
    ([(5, 5)], 0, 10, [(5, 5)]),
    ([], 0, 10, []),
])
def test_clip(
    given_spans: list[tuple[float, float]], start: float, end: float, expected: list[tuple[float, float]],
) -> None:
    assert clip(spans(*given_spans), start, end) == spans(*expected)


# --- record ---


@pytest.mark.parametrize(("given_spans", "rule", "grace", "first", "last", "attended", "status"), [
    ([], Rule(), 30.0, None, None, 0.0, ABSENT),  # never joined
    ([(0, 3600)], Rule(), 30.0, 0, 3600, 3600, PRESENT),  # the whole session, on time
    ([(-300, 3900)], Rule(), 30.0, -300, 3900, 3600, PRESENT),  # early and stayed on: only the session counts
    ([(-1800, 5400)], Rule(present_share=1.0), 30.0, -1800, 5400, 3600, PRESENT),
    ([(600, 3600)], Rule(present_share=0.8), 30.0, 600, 3600, 3000, PRESENT),  # exactly at the late threshold
    ([(601, 3600)], Rule(present_share=0.8), 30.0, 601, 3600, 2999, LATE),  # a second after it
    ([(1800, 3600)], Rule(), 30.0, 1800, 3600, 1800, LATE),
    ([(1800, 2000)], Rule(), 30.0, 1800, 2000, 200, LATE),  # late is reported before a short stay
    ([(0, 1800)], Rule(), 30.0, 0, 1800, 1800, LEFT_EARLY),
    ([(0, 3059)], Rule(), 30.0, 0, 3059, 3059, LEFT_EARLY),
    ([(0, 3060)], Rule(), 30.0, 0, 3060, 3060, PRESENT),  # exactly the present share
    ([(0, 3599)], Rule(present_share=1.0), 30.0, 0, 3599, 3599, LEFT_EARLY),
    ([(0, 1800), (1820, 3600)], Rule(), 30.0, 0, 3600, 3600, PRESENT),  # a reconnect leaves no gap
    ([(0, 1800), (1820, 3600)], Rule(present_share=1.0), 0.0, 0, 3600, 3580, LEFT_EARLY),  # unless grace is 0
    ([(0, 1800), (2400, 3600)], Rule(), 30.0, 0, 3600, 3000, LEFT_EARLY),  # a long drop-out counts
    ([(0, 3600), (0, 3600), (100, 200)], Rule(), 30.0, 0, 3600, 3600, PRESENT),  # devices are not added up
    ([(2400, 3600), (0, 1800)], Rule(), 30.0, 0, 3600, 3000, LEFT_EARLY),  # unsorted input
    ([(-600, -20), (10, 3600)], Rule(), 30.0, -600, 3600, 3600, PRESENT),  # dropped before the start, back in time
    ([(1, 3600)], Rule(late_after=0.0), 30.0, 1, 3600, 3599, LATE),
    ([(0, 3600)], Rule(late_after=0.0), 30.0, 0, 3600, 3600, PRESENT),
    # only outside the scheduled window: absent, but the times are still reported
    ([(-1000, -10)], Rule(), 30.0, -1000, -10, 0, ABSENT),
    ([(3700, 4000)], Rule(), 30.0, 3700, 4000, 0, ABSENT),
    ([(-1000, -10), (3700, 4000)], Rule(), 30.0, -1000, 4000, 0, ABSENT),
    ([(-100, 0)], Rule(), 30.0, -100, 0, 0, ABSENT),  # left at the very start
    ([(3600, 3700)], Rule(), 30.0, 3600, 3700, 0, ABSENT),  # came at the very end
])
def test_record(
    given_spans: list[tuple[float, float]], rule: Rule, grace: float,
    first: float | None, last: float | None, attended: float, status: Status,
) -> None:
    result = record(spans(*given_spans), START, END, rule, grace)
    assert (result.first_join, result.last_leave, result.status) == (first, last, status)
    assert result.attended_seconds == attended
    assert result.share == pytest.approx(attended / (END - START))


def test_a_late_arrival_is_late_even_after_a_visit_before_the_start() -> None:
    """Lateness is judged on the arrival inside the schedule: looking in before the start does not count."""
    result = record(spans((-3000, -2900), (1800, 3600)), START, END, Rule())
    assert result.attended_seconds == 1800
    assert result.status is LATE


@pytest.mark.parametrize(("start", "end"), [(0.0, 0.0), (10.0, 5.0), (-1.0, -2.0)])
def test_a_session_must_end_after_it_starts(start: float, end: float) -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        record(spans((0, 10)), start, end, Rule())


@pytest.mark.parametrize(("present_share", "late_after", "ok"), [
    (0.85, 600.0, True),
    (1.0, 0.0, True),
    (0.01, 1e9, True),
    (0.0, 600.0, False),
    (-0.5, 600.0, False),
    (1.01, 600.0, False),
    (0.85, -1.0, False),
])
def test_rule_validation(present_share: float, late_after: float, ok: bool) -> None:
    if ok:
        assert Rule(present_share, late_after).present_share == present_share
    else:
        with pytest.raises(ValueError, match=r"present_share|late_after"):
            Rule(present_share, late_after)


# --- properties ---

# Whole seconds: sums and differences are exact, so the bounds below hold without a tolerance.
whole_spans = st.lists(
    st.builds(lambda start, length: Interval(float(start), float(start + length)),
              st.integers(-10_000, 10_000), st.integers(0, 3_000)),
    max_size=12,
)
whole_grace = st.integers(0, 120).map(float)
# Any finite floats: for the structural properties, which need no arithmetic beyond comparisons.
float_spans = st.lists(
    st.builds(lambda start, length: Interval(start, start + length),
              st.floats(-1e6, 1e6, allow_nan=False), st.floats(0, 1e5, allow_nan=False)),
    max_size=12,
)
float_grace = st.floats(0, 1e3, allow_nan=False)


def total(intervals: list[Interval]) -> float:
    return sum(i.seconds for i in intervals)


@settings(max_examples=200)
@given(float_spans, float_grace)
def test_merge_is_sorted_and_separated_by_more_than_the_grace(intervals: list[Interval], grace: float) -> None:
    merged = merge(intervals, grace)
    assert merged == sorted(merged)
    for before, after in itertools.pairwise(merged):
        assert after.start - before.end > grace  # hence no overlap and no touching
    assert bool(merged) == bool(intervals)
    assert len(merged) <= len(intervals)


@settings(max_examples=200)
@given(float_spans, float_grace)
def test_merge_covers_every_input_and_invents_no_edges(intervals: list[Interval], grace: float) -> None:
    merged = merge(intervals, grace)
    for interval in intervals:
        assert any(m.start <= interval.start and interval.end <= m.end for m in merged)  # every point of it
    assert {m.start for m in merged} <= {i.start for i in intervals}
    assert {m.end for m in merged} <= {i.end for i in intervals}


@settings(max_examples=200)
@given(float_spans, float_grace)
def test_merge_is_idempotent_and_ignores_order(intervals: list[Interval], grace: float) -> None:
    merged = merge(intervals, grace)
    assert merge(merged, grace) == merged
    assert merge(list(reversed(intervals)), grace) == merged


@settings(max_examples=200)
@given(whole_spans, whole_grace)
def test_merged_total_is_bounded(intervals: list[Interval], grace: float) -> None:
    merged = merge(intervals, grace)
    if not intervals:
        assert merged == []
        return
    wall = max(i.end for i in intervals) - min(i.start for i in intervals)
    assert total(merged) <= wall
    assert total(merged) >= max(i.seconds for i in intervals)
    # Every bridged reconnect adds its gap, at most ``grace``: the merged time may exceed the sum of the inputs by
    # that much and no more (and never exceeds it with no grace).
    bridged = len(intervals) - len(merged)
    assert total(merged) <= total(intervals) + grace * bridged
    assert total(merge(intervals, 0.0)) <= total(intervals)


@settings(max_examples=200)
@given(whole_spans, whole_grace, st.integers(-5_000, 5_000), st.integers(1, 10_000),
       st.floats(0.01, 1.0), st.integers(0, 3_000))
def test_record_stays_within_the_schedule(
    intervals: list[Interval], grace: float, start: int, duration: int, share: float, late_after: int,
) -> None:
    scheduled_start, scheduled_end = float(start), float(start + duration)
    result = record(intervals, scheduled_start, scheduled_end, Rule(share, float(late_after)), grace)
    assert 0.0 <= result.attended_seconds <= duration
    assert 0.0 <= result.share <= 1.0
    assert result.attended_seconds <= total(merge(intervals, grace))
    if intervals:
        assert result.first_join == min(i.start for i in intervals)
        assert result.last_leave == max(i.end for i in intervals)
    else:
        assert (result.first_join, result.last_leave, result.status) == (None, None, ABSENT)
    if result.attended_seconds > 0:
        assert result.status is not ABSENT
    assert record(list(reversed(intervals)), scheduled_start, scheduled_end, Rule(share, float(late_after)),
                  grace) == result


# --- summarise: the report's line from the aggregates the database computes ---


def aggregates(intervals: list[Interval], start: float, end: float, grace: float) -> tuple[
        float | None, float | None, float | None, float]:
    """What ``server.db.attendance.attended`` computes in SQL: the merged intervals' first start and last end, and,
    of their parts inside the schedule that last a while, the first start and the total."""
    merged = merge(intervals, grace)
    if not merged:
        return None, None, None, 0.0
    inside = [i for i in clip(merged, start, end) if i.end > i.start]
    return (merged[0].start, max(i.end for i in merged), inside[0].start if inside else None,
            float(sum(i.seconds for i in inside)))


schedules = st.tuples(st.integers(-5_000, 5_000), st.integers(1, 10_000)).map(
    lambda p: (float(p[0]), float(p[0] + p[1])))
rules = st.builds(lambda share, late: Rule(share, float(late)), st.floats(0.01, 1.0), st.integers(0, 3_000))


# A small world too, where instants, touching edges and gaps of exactly the grace period are common.
small_spans = st.lists(
    st.builds(lambda start, length: Interval(float(start), float(start + length)),
              st.integers(-20, 120), st.sampled_from([0, 0, 1, 5, 10, 40])),
    max_size=8,
)
small_schedules = st.sampled_from([(0.0, 100.0), (10.0, 60.0), (0.0, 1.0)])
small_rules = st.builds(lambda share, late: Rule(share, float(late)), st.sampled_from([0.1, 0.5, 1.0]),
                        st.sampled_from([0, 5, 30]))


def check_record_is_summarise(intervals: list[Interval], grace: float, schedule: tuple[float, float],
                              rule: Rule) -> None:
    start, end = schedule
    first, last, first_inside, attended = aggregates(intervals, start, end, grace)
    assert record(intervals, start, end, rule, grace) == summarise(first, last, first_inside, attended, start, end,
                                                                   rule)


@settings(max_examples=300)
@given(whole_spans, whole_grace, schedules, rules)
@example(spans((100, 100), (1800, 3600)), 30.0, (START, END), Rule())  # a look-in of no duration, then late
def test_record_is_summarise_of_the_merged_and_clipped_aggregates(
    intervals: list[Interval], grace: float, schedule: tuple[float, float], rule: Rule,
) -> None:
    check_record_is_summarise(intervals, grace, schedule, rule)


@settings(max_examples=300)
@given(small_spans, st.sampled_from([0.0, 5.0]), small_schedules, small_rules)
def test_record_is_summarise_in_a_small_world(
    intervals: list[Interval], grace: float, schedule: tuple[float, float], rule: Rule,
) -> None:
    check_record_is_summarise(intervals, grace, schedule, rule)


@pytest.mark.parametrize(("given_spans", "status"), [
    ([(100, 100), (1800, 3600)], LATE),  # a look-in of no duration is no arrival
    ([(100, 100)], ABSENT),
    ([(100, 100), (110, 3600)], PRESENT),  # bridged by the grace period: one stay from 100
    ([(-10, 0), (1800, 3600)], LATE),  # ended as the class began
])
def test_an_instant_inside_the_schedule_is_no_arrival(
    given_spans: list[tuple[float, float]], status: Status,
) -> None:
    intervals = spans(*given_spans)
    assert record(intervals, START, END, Rule()).status is status
    first, last, first_inside, attended = aggregates(intervals, START, END, DEFAULT_GRACE_SECONDS)
    assert summarise(first, last, first_inside, attended, START, END, Rule()).status is status


@settings(max_examples=300)
@given(st.one_of(st.none(), st.floats(-1e6, 1e6)), st.one_of(st.none(), st.floats(-1e6, 1e6)),
       st.one_of(st.none(), st.floats(-1e5, 1e5)), st.floats(-10.0, 1e6), schedules, rules)
def test_summarise_follows_the_status_rules(
    first: float | None, last: float | None, first_inside: float | None, attended: float,
    schedule: tuple[float, float], rule: Rule,
) -> None:
    start, end = schedule
    line = summarise(first, last, first_inside, attended, start, end, rule)
    assert (line.first_join, line.last_leave, line.attended_seconds) == (first, last, attended)
    assert line.share <= 1.0  # time beyond the schedule (a clock skew, a double count) never makes more than all
    assert line.share == min(1.0, attended / (end - start))
    if first_inside is None or attended <= 0:
        assert line.status is ABSENT
    elif first_inside > start + rule.late_after:
        assert line.status is LATE
    elif line.share >= rule.present_share:
        assert line.status is PRESENT
    else:
        assert line.status is LEFT_EARLY


@pytest.mark.parametrize(("first_inside", "attended", "rule", "status", "share"), [
    (None, 0.0, Rule(), ABSENT, 0.0),
    (None, 3600.0, Rule(), ABSENT, 1.0),  # time, but none of it inside
    (0.0, 0.0, Rule(), ABSENT, 0.0),
    (0.0, 3600.0, Rule(), PRESENT, 1.0),
    (0.0, 7200.0, Rule(), PRESENT, 1.0),  # capped
    (0.0, 3060.0, Rule(), PRESENT, 0.85),
    (0.0, 3059.0, Rule(), LEFT_EARLY, 3059 / 3600),
    (600.0, 3000.0, Rule(present_share=0.8), PRESENT, 3000 / 3600),  # at the late threshold
    (600.5, 3000.0, Rule(present_share=0.8), LATE, 3000 / 3600),
    (-50.0, 3600.0, Rule(late_after=0.0), PRESENT, 1.0),
    (0.001, 3600.0, Rule(late_after=0.0), LATE, 1.0),
])
def test_summarise(first_inside: float | None, attended: float, rule: Rule, status: Status, share: float) -> None:
    assert summarise(-5.0, 9.0, first_inside, attended, START, END, rule) == Record(-5.0, 9.0, attended, share, status)


@pytest.mark.parametrize(("start", "end"), [(0.0, 0.0), (10.0, 5.0)])
def test_summarise_needs_a_session_that_ends_after_it_starts(start: float, end: float) -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        summarise(None, None, None, 0.0, start, end, Rule())
