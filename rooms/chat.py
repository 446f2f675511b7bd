"""Circle chat rules that need no I/O: who is notified of a mention, typing throttles, how far replay reaches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

TAIL_SIZE = 50  # messages sent to a client that joins with nothing seen
MAX_REPLAY = 500  # a client further behind than this refetches over HTTP instead
MAX_MENTIONS = 20


def mention_targets(mentioned: Iterable[int], levels: Mapping[int, str], author_id: int) -> set[int]:
    """Members to notify of a mention: mentioned, present in the circle, not the author, and not silenced.

    ``levels`` maps each mentioned member to their notification level ("all", "mentions" or "none"); anyone absent
    from it is not a member and is not notified.
    """
    return {uid for uid in mentioned if uid != author_id and levels.get(uid, "none") != "none"}


def first_visible_seq(sees_earlier_history: bool, joined_seq: int) -> int:
    """The first sequence number a member may read: everything, or only what followed their joining."""
    return 1 if sees_earlier_history else joined_seq + 1


@dataclass(frozen=True, slots=True)
class Replay:
    """What a (re)joining client should receive: messages after ``after_seq``, or a gap to refetch over HTTP."""

    after_seq: int
    gap: bool


def plan_replay(last_seen: int | None, last_seq: int, first_visible: int) -> Replay:
    floor = first_visible - 1
    if last_seen is None:
        return Replay(max(floor, last_seq - TAIL_SIZE), gap=False)
    since = max(last_seen, floor)
    if last_seq - since > MAX_REPLAY:
        return Replay(max(floor, last_seq - TAIL_SIZE), gap=True)
    return Replay(min(since, last_seq), gap=False)


@dataclass
class TypingThrottle:
    """At most one typing signal per member and circle per ``interval`` seconds; signals are never stored."""

    interval: float = 2.0
    _last: dict[tuple[str, int], float] = field(default_factory=dict)

    def allow(self, circle_id: str, user_id: int, now: float) -> bool:
        key = (circle_id, user_id)
        if now - self._last.get(key, float("-inf")) < self.interval:
            return False
        self._last[key] = now
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
        return True


@dataclass
class InOrder:
    """Releases numbered items per key in sequence order, holding early ones until the gap before them fills.

    Senders commit in number order, but their broadcasts can reach a process out of order (two processes publish
    independently). A gap that does not fill within ``hold`` seconds (its sender died after committing) is skipped;
    clients then recover the missing number by rejoining with their last ``seq``.
    """

    hold: float = 1.0
    _next: dict[str, int] = field(default_factory=dict)
    _held: dict[str, dict[int, object]] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)

    def expect(self, key: str, last_seq: int) -> None:
        """Start ordering ``key`` after ``last_seq``, unless already ordering it."""
        self._next.setdefault(key, last_seq + 1)

    def offer(self, key: str, seq: int, item: object, now: float) -> list[object]:
        expected = self._next.setdefault(key, seq)
        if seq < expected:
            return [item]  # older than what was released already: a late duplicate path; let clients dedupe
        held = self._held.setdefault(key, {})
        held[seq] = item
        self._since.setdefault(key, now)
        return self._release(key, now)

    def overdue(self, now: float) -> list[object]:
        """Skip gaps held longer than ``hold`` and release what waited behind them."""
        ready: list[object] = []
        for key, since in list(self._since.items()):
            if now - since >= self.hold and self._held.get(key):
                self._next[key] = min(self._held[key])
                ready.extend(self._release(key, now))
        return ready

    def waiting(self) -> bool:
        return any(self._held.values())

    def _release(self, key: str, now: float) -> list[object]:
        held = self._held.get(key, {})
        ready = []
        while self._next[key] in held:
            ready.append(held.pop(self._next[key]))
            self._next[key] += 1
        if not held:
            self._held.pop(key, None)
            self._since.pop(key, None)
        elif ready:
            self._since[key] = now  # a new gap: its wait starts now
        return ready
