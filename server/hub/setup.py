"""Build the Socket.IO server for an app, attach it, and own its start-up and shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import socketio
from aiohttp import web

from media.relay import Relay, RelayConfig
from server import keys
from server.hub import transport
from server.hub.base import HubParts
from server.hub.emit import Broadcaster
from server.hub.namespace import Hub
from server.hub.nodes import MediaNodes, OneNode, RedisNodes
from server.hub.presence import MemoryPresence, RedisPresence
from server.hub.roomstore import MemoryRoomStore, RedisRoomStore

log = logging.getLogger(__name__)
SIO = web.AppKey("sio", socketio.AsyncServer)
BROADCASTER = web.AppKey("broadcaster", Broadcaster)
RELAY = web.AppKey("relay", Relay)


def attach_hub(app: web.Application) -> None:
    """Create the server and its routes now (the router freezes at start-up); connect its parts in cleanup_ctx."""
    settings = app[keys.SETTINGS]
    # Connections and rooms stay local to each process (sticky sessions); broadcasts cross processes through the
    # Broadcaster's own Redis channel, which also keeps numbered messages in order (see server/hub/emit.py).
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=transport.origin_checker(settings.allowed_origins, settings.trust_forwarded),
        max_http_buffer_size=settings.max_socket_message_bytes,
        http_compression=False,
        ping_interval=20,
        ping_timeout=20,
    )
    transport.use_plain_websockets(sio)
    sio.attach(app)
    app[SIO] = sio
    app[BROADCASTER] = Broadcaster(sio)
    app.cleanup_ctx.append(_hub)
    app.on_shutdown.append(_disconnect_clients)


async def _disconnect_clients(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open connections: without this, a connected client holds the
    # process up to the shutdown timeout.
    await transport.disconnect_all(app[SIO])


async def _hub(app: web.Application) -> AsyncIterator[None]:
    sio = app[SIO]
    redis = app.get(keys.REDIS)
    prefix = app[keys.SETTINGS].redis_prefix
    presence = RedisPresence(redis, prefix) if redis is not None else MemoryPresence()
    rooms = RedisRoomStore(redis, prefix) if redis is not None else MemoryRoomStore()
    settings = app[keys.SETTINGS]
    nodes: MediaNodes = OneNode()
    if redis is not None and settings.node_url:
        nodes = RedisNodes(redis, prefix, settings.node_url)
    elif redis is not None:
        log.warning("QUANZI_REDIS_URL is set without QUANZI_NODE_URL: a class's media stays on each process")
    hub = Hub(HubParts(
        db=app[keys.DB], limiter=app[keys.LIMITER], presence=presence, tokens=app[keys.SOCKET_TOKENS],
        broadcaster=app[BROADCASTER], rooms=rooms, grace_seconds=settings.class_grace_seconds, nodes=nodes,
    ))
    relay = Relay(RelayConfig(), hub.signal)
    hub.attach_relay(relay, settings)
    app[RELAY] = relay
    sio.register_namespace(hub)
    await app[BROADCASTER].start(redis, f"{prefix}broadcast")
    yield
    hub.close()
    await relay.close()
    await app[BROADCASTER].stop()
    await sio.shutdown()
