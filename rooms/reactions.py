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
    _counts: dict[int, Counter[ClassReaction]] = field(default_factory=dict)

    def add(self, class_id: int, kind: ClassReaction) -> bool:
        """Count one reaction; True when the class had none waiting, so its flush needs scheduling."""
        counts = self._counts.get(class_id)
        fresh = counts is None
        if counts is None:
            counts = self._counts[class_id] = Counter()
        counts[kind] += 1
        return fresh

    def drain(self) -> dict[int, dict[str, int]]:
        """Everything counted since the last drain, per class, and start afresh."""
        drained = {class_id: {kind.value: n for kind, n in sorted(counts.items())}
                   for class_id, counts in self._counts.items()}
        self._counts = {}
        return drained
