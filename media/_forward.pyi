"""Types of the C extension ``media/_forward.c`` (the relay's per-subscriber hot path); see media.forwarding."""

from collections.abc import Callable
from typing import Final

SENT: Final[int]
CONGESTED: Final[int]
NOT_CONNECTED: Final[int]
MAX_PROTECTED: Final[int]

class Counters:
    packets_received: int
    packets_forwarded: int
    bytes_forwarded: int
    dropped_not_allowed: int
    dropped_waiting_keyframe: int
    dropped_congestion: int
    dropped_not_connected: int
    dropped_datagrams: int
    nacks_received: int
    nacks_answered: int
    nacks_missed: int
    plis_received: int
    plis_sent: int
    plis_deferred: int
    audio_only_auto: int
    def as_dict(self) -> dict[str, int]: ...

class Sink:
    @property
    def attached(self) -> bool: ...
    def attach(self, fd: int, host: str, port: int, session: int, protect: int, keep: object) -> None: ...
    def detach(self) -> None: ...
    def __call__(self, header: bytes, payload: bytes, /) -> int: ...

class OutgoingStream:
    send: Callable[[bytes, bytes], int]
    active: bool
    @property
    def ssrc(self) -> int: ...
    @property
    def rtx_ssrc(self) -> int: ...
    @property
    def packets(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def octets(self) -> int: ...
    @property
    def last_ts(self) -> int: ...
    @property
    def last_time(self) -> float: ...
    @property
    def clock_rate(self) -> int: ...
    @property
    def is_video(self) -> bool: ...
    @property
    def waiting_for_keyframe(self) -> bool: ...
    def __init__(
        self,
        *,
        is_video: bool,
        ssrc: int,
        rtx_ssrc: int,
        clock_rate: int,
        history_size: int,
        counters: Counters,
    ) -> None: ...
    def forward(self, seq: int, ts: int, marker: int, payload: bytes, keyframe: bool, /) -> None: ...
    def retransmit(self, lost: list[int], /) -> int: ...
    def set_payload_types(self, payload_type: int, rtx_payload_type: int | None, /) -> None: ...
    def restart(self) -> None: ...

def forward_all(
    streams: list[OutgoingStream], seq: int, ts: int, marker: int, payload: bytes, keyframe: bool, /
) -> None: ...
def not_connected(*args: object) -> int: ...
