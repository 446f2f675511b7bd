"""Reactions in a live class: counted as they come, sent out as totals a few times a second.

A class of three hundred clapping must not become three hundred events per clap for each of three hundred
receivers; the hub adds each reaction to a tally and broadcasts what accumulated once per flush interval.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

FLUSH_INTERVAL_SECONDS = 0.5


class ClassReaction(enum.StrEnum):
    CLAP = "clap"
    THUMBS_UP = "thumbs_up"
    HEART = "heart"
    LAUGH = "laugh"
    SURPRISED = "surprised"
    CONFUSED = "confused"  # "I'm lost": teachers watch this one
    FASTER = "faster"
    SLOWER = "slower"


@dataclass
class ReactionTally:
    _counts: dict[str, Counter[ClassReaction]] = field(default_factory=dict)

    def add(self, room: str, kind: ClassReaction) -> bool:
        """Count one reaction; True when ``room`` had none waiting, so its flush needs scheduling."""
        counts = self._counts.get(room)
        fresh = counts is None
        if counts is None:
            counts = self._counts[room] = Counter()
        counts[kind] += 1
        return fresh

    def drain(self) -> dict[str, dict[str, int]]:
        """Everything counted since the last drain, per room, and start afresh."""
        drained = {room: {kind.value: n for kind, n in sorted(counts.items())} for room, counts in self._counts.items()}
        self._counts = {}
        return drained
