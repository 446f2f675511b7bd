"""Reaction tallies in rooms/reactions.py: counted per class as they come, drained as totals once per flush.

``add`` says when a room's first reaction since the last drain arrives (the hub schedules one flush then, not one per
reaction); ``drain`` hands over everything counted, per room and kind, and starts afresh.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooms.reactions import FLUSH_INTERVAL_SECONDS, ClassReaction, ReactionTally

CLAP, HEART, CONFUSED, FASTER = ClassReaction.CLAP, ClassReaction.HEART, ClassReaction.CONFUSED, ClassReaction.FASTER


def test_the_kinds_on_the_wire() -> None:
    assert [k.value for k in ClassReaction] == [
        "clap", "thumbs_up", "heart", "laugh", "surprised", "confused", "faster", "slower"]
    assert 0 < FLUSH_INTERVAL_SECONDS <= 1


@pytest.mark.parametrize(("adds", "fresh", "drained"), [
    ([], [], {}),
    ([(1, CLAP)], [True], {1: {"clap": 1}}),
    ([(1, CLAP)] * 3, [True, False, False], {1: {"clap": 3}}),
    ([(1, CLAP), (1, HEART), (1, CLAP)], [True, False, False],
     {1: {"clap": 2, "heart": 1}}),
    # each room schedules its own flush
    ([(1, CLAP), (2, CLAP), (1, HEART), (2, CONFUSED)], [True, True, False, False],
     {1: {"clap": 1, "heart": 1}, 2: {"clap": 1, "confused": 1}}),
])
def test_add_and_drain(adds: list[tuple[int, ClassReaction]], fresh: list[bool],
                       drained: dict[int, dict[str, int]]) -> None:
    tally = ReactionTally()
    assert [tally.add(room, kind) for room, kind in adds] == fresh
    assert tally.drain() == drained


def test_drain_starts_afresh() -> None:
    tally = ReactionTally()
    assert tally.add(1, CLAP) is True
    assert tally.add(1, CLAP) is False
    assert tally.drain() == {1: {"clap": 2}}
    assert tally.drain() == {}  # nothing counted twice
    assert tally.add(1, HEART) is True  # a new flush is needed
    assert tally.add(2, HEART) is True
    assert tally.drain() == {1: {"heart": 1}, 2: {"heart": 1}}


def test_totals_name_kinds_by_their_wire_value_in_order() -> None:
    tally = ReactionTally()
    for kind in (FASTER, CLAP, CONFUSED, CLAP, HEART):
        tally.add(7, kind)
    counts = tally.drain()[7]
    assert counts == {"clap": 2, "confused": 1, "faster": 1, "heart": 1}
    assert list(counts) == sorted(counts)
    assert all(type(key) is str and type(n) is int for key, n in counts.items())


def test_a_busy_class_becomes_one_total_not_an_event_per_clap() -> None:
    tally = ReactionTally()
    flushes = sum(tally.add(1, CLAP) for _ in range(300))
    assert flushes == 1
    assert tally.drain() == {1: {"clap": 300}}


reactions = st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from(list(ClassReaction)),
                               st.booleans()), max_size=60)


@settings(max_examples=200)
@given(reactions)
def test_every_reaction_is_counted_once_and_each_room_flushes_once_per_window(
    steps: list[tuple[int, ClassReaction, bool]],
) -> None:
    """Random adds with drains in between (the boolean): totals add up, and ``add`` is True exactly for a room's
    first reaction after a drain."""
    tally = ReactionTally()
    expected: Counter[tuple[int, str]] = Counter()
    drained: Counter[tuple[int, str]] = Counter()
    pending: set[int] = set()
    for room, kind, drain_after in steps:
        assert tally.add(room, kind) is (room not in pending)
        pending.add(room)
        expected[(room, kind.value)] += 1
        if drain_after:
            for r, counts in tally.drain().items():
                assert r in pending and all(n > 0 for n in counts.values())
                drained.update({(r, k): n for k, n in counts.items()})
            pending.clear()
    for r, counts in tally.drain().items():
        drained.update({(r, k): n for k, n in counts.items()})
    assert drained == expected
    assert tally.drain() == {}
