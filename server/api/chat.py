"""Chat over HTTP: the short-lived token that opens a socket, and a circle's message history."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from server import keys
from server.api.chat_schemas import HistoryOut, HistoryQuery, MessageOut, SocketTokenOut
from server.api.identity import user_actor
from server.api.routes import Route
from server.api.wire import ok, parse_query, path_circle_id, transaction
from server.db import feed as feed_db
from server.services import chat


async def socket_token(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        actor = await user_actor(request, db)
    expires = time.time() + request.app[keys.SETTINGS].socket_token_ttl_seconds
    token = request.app[keys.SOCKET_TOKENS].sign(actor.user_id, expires)
    return ok(SocketTokenOut(token=token, expires_at=datetime.fromtimestamp(int(expires), UTC)), status=201)


async def history(request: web.Request) -> web.Response:
    query = parse_query(request, HistoryQuery)
    circle_id = path_circle_id(request)
    async with transaction(request) as db:
        messages, first = await chat.history(db, await user_actor(request, db), circle_id, query.before,
                                             query.limit + 1)
        page = messages[: query.limit]
        authors = await feed_db.authors(db, circle_id, {m.author_id for m in page if m.author_id is not None})
    more = len(messages) > query.limit
    return ok(HistoryOut(messages=[MessageOut.of(m, authors) for m in page],
                         next_before=page[-1].seq if more else None, first_visible_seq=first))


ROUTES = [
    Route("POST", "/api/socket-token", socket_token, "A short-lived token to open the Socket.IO connection", "chat",
          response=SocketTokenOut, status=201),
    Route("GET", "/api/circles/{circle_id}/messages", history,
          "Chat history, newest first, before a sequence number (members; honours the history policy)", "chat",
          query=HistoryQuery, response=HistoryOut),
]
