"""The pure chat rules in rooms/chat.py, table by table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rooms.chat import (
    MAX_REPLAY,
    TAIL_SIZE,
    InOrder,
    Replay,
    TypingThrottle,
    first_visible_seq,
    mention_targets,
    plan_replay,
)


@pytest.mark.parametrize(("mentioned", "levels", "author", "expected"), [
    ([2, 3, 4], {2: "all", 3: "mentions", 4: "none"}, 1, {2, 3}),
    ([1, 2], {1: "all", 2: "all"}, 1, {2}),  # authors are not told about themselves
    ([9], {}, 1, set()),  # not a member
    ([], {2: "all"}, 1, set()),
])
def test_mention_targets(mentioned: list[int], levels: dict[int, str], author: int, expected: set[int]) -> None:
    assert mention_targets(mentioned, levels, author) == expected


@pytest.mark.parametrize(("whole", "joined_seq", "expected"), [(True, 40, 1), (False, 40, 41), (False, 0, 1)])
def test_first_visible_seq(whole: bool, joined_seq: int, expected: int) -> None:
    assert first_visible_seq(whole, joined_seq) == expected


@pytest.mark.parametrize(("last_seen", "last_seq", "first_visible", "expected"), [
    (None, 10, 1, Replay(0, gap=False)),  # fresh client, short chat: everything
    (None, 200, 1, Replay(200 - TAIL_SIZE, gap=False)),  # fresh client: the tail
    (None, 200, 180, Replay(179, gap=False)),  # the tail never reaches below what the member may read
    (150, 200, 1, Replay(150, gap=False)),  # behind by 50: exactly those
    (200, 200, 1, Replay(200, gap=False)),  # up to date: nothing
    (250, 200, 1, Replay(200, gap=False)),  # claims to be ahead (another server's number): nothing
    (0, MAX_REPLAY + 1, 1, Replay(MAX_REPLAY + 1 - TAIL_SIZE, gap=True)),  # too far behind: tail plus "refetch"
    (5, 100, 50, Replay(49, gap=False)),  # last seen before joining: from the first visible
])
def test_plan_replay(last_seen: int | None, last_seq: int, first_visible: int, expected: Replay) -> None:
    assert plan_replay(last_seen, last_seq, first_visible) == expected


def test_typing_is_throttled_per_member_and_circle() -> None:
    throttle = TypingThrottle(interval=2.0)
    assert throttle.allow("c", 1, 0.0)
    assert not throttle.allow("c", 1, 1.9)
    assert throttle.allow("c", 2, 1.9)
    assert throttle.allow("d", 1, 1.9)
    assert throttle.allow("c", 1, 2.0)


def test_in_order_holds_early_items_until_the_gap_fills() -> None:
    order = InOrder(hold=1.0)
    order.expect("c", 10)
    assert order.offer("c", 12, "twelve", 0.0) == []
    assert order.offer("c", 11, "eleven", 0.1) == ["eleven", "twelve"]
    assert not order.waiting()


def test_in_order_skips_a_gap_that_never_fills() -> None:
    order = InOrder(hold=1.0)
    order.expect("c", 0)
    assert order.offer("c", 2, "two", 0.0) == []
    assert order.overdue(0.5) == []
    assert order.overdue(1.0) == ["two"]
    assert order.offer("c", 3, "three", 1.1) == ["three"]


def test_in_order_keeps_keys_apart_and_releases_stale_items_at_once() -> None:
    order = InOrder()
    order.expect("a", 0)
    order.expect("b", 5)
    assert order.offer("b", 6, "b6", 0.0) == ["b6"]
    assert order.offer("a", 2, "a2", 0.0) == []
    assert order.offer("b", 3, "b3", 0.0) == ["b3"]  # below what was released: not held back
    order.expect("b", 100)  # already ordering b: a later join does not move it
    assert order.offer("b", 7, "b7", 0.0) == ["b7"]


@given(st.permutations(list(range(1, 30))))
def test_in_order_releases_any_arrival_order_in_sequence(arrival: list[int]) -> None:
    order = InOrder(hold=60.0)
    order.expect("c", 0)
    released: list[object] = []
    for seq in arrival:
        released += order.offer("c", seq, seq, 0.0)
    assert released == list(range(1, 30))
    assert not order.waiting()


def test_in_order_times_each_gap_from_when_it_opened() -> None:
    order = InOrder(hold=1.0)
    order.expect("c", 0)
    assert order.offer("c", 2, "two", 0.0) == []
    assert order.offer("c", 4, "four", 0.5) == []
    assert order.offer("c", 1, "one", 0.9) == ["one", "two"]  # 3 is now missing, since 0.9
    assert order.overdue(1.5) == []  # 3 has been missing for 0.6 s only
    assert order.overdue(2.0) == ["four"]
