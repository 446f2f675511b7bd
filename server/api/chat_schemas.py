"""Shapes of circle chat, shared by the HTTP history route and the Socket.IO events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from server.api.schemas import Id, Request
from server.db import feed as feed_db
from server.db.models import ChatMessage

CircleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{12}$")]
ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
MessageBody = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Seq = Annotated[int, Field(ge=0, le=2**31 - 1)]


class SocketTokenOut(BaseModel):
    token: str = Field(description="pass as auth={'token': ...} when connecting the socket")
    expires_at: datetime


class AuthorOut(BaseModel):
    user_id: int
    name: str


class MessageOut(BaseModel):
    circle_id: str
    seq: int
    client_id: str
    author: AuthorOut | None
    body: str
    mentions: list[int]
    created_at: datetime
    edited_at: datetime | None
    deleted: bool

    @classmethod
    def of(cls, message: ChatMessage, authors: dict[int, feed_db.Author]) -> MessageOut:
        author = authors.get(message.author_id) if message.author_id is not None else None
        return cls(circle_id=message.circle_id, seq=message.seq, client_id=message.client_id,
                   author=AuthorOut(user_id=author.user_id, name=author.name) if author else None,
                   body=message.body, mentions=list(message.mentions), created_at=message.created_at,
                   edited_at=message.edited_at, deleted=message.deleted_at is not None)


class HistoryQuery(BaseModel):
    model_config = {"extra": "forbid"}
    before: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(None, description="a sequence number")
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class HistoryOut(BaseModel):
    messages: list[MessageOut] = Field(description="newest first")
    next_before: int | None
    first_visible_seq: int = Field(description="the oldest number this member may read")


# --- socket requests ---


class JoinCircleIn(Request):
    circle_id: CircleId
    last_seq: Seq | None = None


class CircleIn(Request):
    circle_id: CircleId


class SendMessageIn(Request):
    circle_id: CircleId
    client_id: ClientId
    body: MessageBody
    mentions: Annotated[list[Id], Field(max_length=20)] = Field(default_factory=list)


class EditMessageIn(Request):
    circle_id: CircleId
    seq: Annotated[int, Field(ge=1, le=2**31 - 1)]
    body: MessageBody


class MessageRefIn(Request):
    circle_id: CircleId
    seq: Annotated[int, Field(ge=1, le=2**31 - 1)]


class MarkReadIn(Request):
    circle_id: CircleId
    seq: Seq


class MuteIn(Request):
    circle_id: CircleId
    user_id: Id
    seconds: Annotated[int, Field(ge=0, le=30 * 24 * 3600)]


class AnnouncementModeIn(Request):
    circle_id: CircleId
    on: bool
