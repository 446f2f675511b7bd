"""The hub's one namespace ("/"): the connection handshake, and every event group (circle chat, live classes,
media signalling)."""

from __future__ import annotations

from server.hub.base import HubParts
from server.hub.chat import ChatEvents
from server.hub.media import MediaEvents


class Hub(ChatEvents, MediaEvents):
    def __init__(self, parts: HubParts) -> None:
        super().__init__(parts)
        self._init_chat()
        self._init_classes()

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        await self._chat_disconnect(sid)
        await self._classes_disconnect(sid)

    async def _evict(self, sid: str, user_id: int, circle_id: str) -> None:
        await super()._evict(sid, user_id, circle_id)
        await self._evict_from_classes(sid, user_id, circle_id)

    def close(self) -> None:
        self._close_classes()
