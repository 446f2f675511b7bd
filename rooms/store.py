"""The port through which the hub keeps live room state: in memory for one process, Redis for several.

``update`` is the only way to change a room. It loads the room (or builds it with ``initial`` when the store has
none), applies ``change``, and saves the result atomically with respect to every other ``update`` of that room, on
any process. If ``change`` raises, nothing is saved. Rooms are stored in their ``Room.to_dict`` form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from rooms.classroom import Room

T = TypeVar("T")


class RoomStore(Protocol):
    async def update(self, room_id: str, initial: Callable[[], Room], change: Callable[[Room], T]) -> T: ...

    async def get(self, room_id: str) -> Room | None: ...

    async def discard(self, room_id: str) -> None:
        """Forget a room that is over (its class ended): the database has what outlives it."""
        ...
