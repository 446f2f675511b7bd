"""Request and response shapes of circles, membership and the feed."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from rooms.errors import InvalidInput
from server.api.schemas import Id, Name, Request
from server.db import feed as feed_db
from server.db.models import (
    ApplicationStatus,
    AuditEntry,
    ChatHistory,
    Circle,
    CircleKind,
    CircleMember,
    CircleRole,
    CircleSection,
    Comment,
    Invite,
    JoinPolicy,
    JoinRequest,
    MemberType,
    NotificationLevel,
    User,
    Visibility,
)

LongName = Annotated[Name, StringConstraints(max_length=120)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]
SectionName = Annotated[Name, StringConstraints(max_length=40)]
Nickname = Annotated[Name, StringConstraints(max_length=40)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
PostBody = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
PostTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CommentBody = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5_000)]
MAX_CAP = 100_000


class Query(BaseModel):
    """Query strings arrive as text: numbers are parsed, unknown parameters refused."""

    model_config = ConfigDict(extra="forbid")


# --- circles ---


class CircleIn(Request):
    name: LongName
    description: Description = ""
    kind: CircleKind = CircleKind.COMMUNITY
    visibility: Visibility = Visibility.PUBLIC
    join_policy: JoinPolicy = JoinPolicy.OPEN
    member_cap: Annotated[int, Field(ge=2, le=MAX_CAP)] = 500
    chat_history: ChatHistory = ChatHistory.ALL
    institution_id: Id | None = None


class CirclePatchIn(Request):
    name: LongName | None = None
    description: Description | None = None
    kind: CircleKind | None = None
    visibility: Visibility | None = None
    join_policy: JoinPolicy | None = None
    member_cap: Annotated[int, Field(ge=2, le=MAX_CAP)] | None = None
    chat_history: ChatHistory | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> CirclePatchIn:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ArchivedIn(Request):
    archived: bool


class CircleOut(BaseModel):
    id: str
    name: str
    description: str
    kind: CircleKind
    visibility: Visibility
    join_policy: JoinPolicy
    member_cap: int
    chat_history: ChatHistory
    institution_id: int | None
    archived: bool
    created_at: datetime
    my_role: CircleRole | None = None

    @classmethod
    def of(cls, circle: Circle, my_role: CircleRole | None = None) -> CircleOut:
        return cls(id=circle.id, name=circle.name, description=circle.description, kind=circle.kind,
                   visibility=circle.visibility, join_policy=circle.join_policy, member_cap=circle.member_cap,
                   chat_history=circle.chat_history, institution_id=circle.institution_id,
                   archived=circle.archived_at is not None, created_at=circle.created_at, my_role=my_role)


class CircleListOut(BaseModel):
    circles: list[CircleOut]
    next_before: str | None = Field(None, description="pass as ?before= for the next page")


class DiscoverQuery(Query):
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    before: str | None = Field(None, description="cursor from the previous page")
    limit: Annotated[int, Field(ge=1, le=50)] = 20

    def cursor(self) -> tuple[datetime, str] | None:
        if self.before is None:
            return None
        try:
            stamp, _, circle_id = base64.urlsafe_b64decode(self.before.encode()).decode().partition("|")
            return datetime.fromisoformat(stamp), circle_id
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidInput("malformed cursor", code="bad_cursor") from None


def discover_cursor(circle: Circle) -> str:
    return base64.urlsafe_b64encode(f"{circle.created_at.isoformat()}|{circle.id}".encode()).decode()


class SectionIn(Request):
    name: SectionName


class SectionOrderIn(Request):
    section_ids: Annotated[list[Id], Field(max_length=10)]


class SectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    position: int


class SectionListOut(BaseModel):
    sections: list[SectionOut]

    @classmethod
    def of(cls, sections: list[CircleSection]) -> SectionListOut:
        return cls(sections=[SectionOut.model_validate(s) for s in sections])


# --- applications ---


class Question(Request):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: Literal["text", "choice"]
    options: Annotated[list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]],
                       Field(max_length=10)] = Field(default_factory=list)
    required: bool = True

    @model_validator(mode="after")
    def _options_fit_kind(self) -> Question:
        if self.kind == "choice" and len(self.options) < 2:
            raise ValueError("a choice question needs at least two options")
        if self.kind == "text" and self.options:
            raise ValueError("a text question has no options")
        return self


class FormIn(Request):
    questions: Annotated[list[Question], Field(max_length=10)]

    @field_validator("questions")
    @classmethod
    def _unique_ids(cls, questions: list[Question]) -> list[Question]:
        if len({q.id for q in questions}) != len(questions):
            raise ValueError("question ids must be unique")
        return questions


class FormOut(BaseModel):
    questions: list[dict[str, Any]]


Answer = Annotated[str, StringConstraints(max_length=2000)]


class ApplicationIn(Request):
    answers: Annotated[dict[str, Answer], Field(max_length=10)] = Field(default_factory=dict)


class ReviewIn(Request):
    reason: Reason | None = None


class ApplicantOut(BaseModel):
    id: int
    display_name: str
    verified: bool


class ApplicationOut(BaseModel):
    id: int
    circle_id: str
    applicant: ApplicantOut
    answers: dict[str, Any]
    status: ApplicationStatus
    reason: str | None
    created_at: datetime
    reviewed_at: datetime | None

    @classmethod
    def of(cls, request: JoinRequest, user: User) -> ApplicationOut:
        return cls(id=request.id, circle_id=request.circle_id,
                   applicant=ApplicantOut(id=user.id, display_name=user.display_name, verified=user.verified),
                   answers=request.answers, status=request.status, reason=request.reason,
                   created_at=request.created_at, reviewed_at=request.reviewed_at)


class ApplicationListOut(BaseModel):
    applications: list[ApplicationOut]


class ApplicationsQuery(Query):
    status: ApplicationStatus | None = ApplicationStatus.PENDING


# --- invites ---

WEEK = 7 * 24 * 3600


class InviteIn(Request):
    role: CircleRole = CircleRole.MEMBER
    max_uses: Annotated[int, Field(ge=1, le=10_000)] | None = None
    expires_in_seconds: Annotated[int, Field(ge=60, le=365 * 24 * 3600)] | None = WEEK


class InviteOut(BaseModel):
    id: int
    token: str
    url: str
    role: CircleRole
    max_uses: int | None
    uses: int
    expires_at: datetime | None
    revoked: bool
    created_at: datetime

    @classmethod
    def of(cls, invite: Invite, origin: str) -> InviteOut:
        return cls(id=invite.id, token=invite.token, url=invite_url(origin, invite.token), role=invite.role,
                   max_uses=invite.max_uses, uses=invite.uses, expires_at=invite.expires_at,
                   revoked=invite.revoked_at is not None, created_at=invite.created_at)


def invite_url(origin: str, token: str) -> str:
    return f"{origin}/join/{token}"


class InviteListOut(BaseModel):
    invites: list[InviteOut]


class InvitePreviewOut(BaseModel):
    circle: CircleOut
    role: CircleRole
    status: Literal["valid", "revoked", "expired", "used_up", "full"]


class MembershipOut(BaseModel):
    circle_id: str
    user_id: int
    role: CircleRole
    member_type: MemberType
    nickname: str | None
    notification_level: NotificationLevel
    joined_at: datetime
    muted_until: datetime | None = Field(None, description="muted in the chat until then")

    @classmethod
    def of(cls, member: CircleMember) -> MembershipOut:
        return cls(circle_id=member.circle_id, user_id=member.user_id, role=member.role,
                   member_type=member.member_type, nickname=member.nickname,
                   notification_level=member.notification_level, joined_at=member.joined_at,
                   muted_until=member.muted_until)


# --- the member list ---


class DirectoryQuery(Query):
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)] | None = None
    position: Annotated[str, StringConstraints(max_length=120)] | None = None
    education: Annotated[str, StringConstraints(max_length=120)] | None = None
    industry: Annotated[str, StringConstraints(max_length=120)] | None = None
    field: Annotated[str, StringConstraints(pattern=r'^[^:"\\]{1,40}:.{0,200}$')] | None = Field(
        None, description="a custom profile field as key:value, e.g. city:Hangzhou")
    role: CircleRole | None = None
    after: Id | None = Field(None, description="user id from the previous page's next_after")
    limit: Annotated[int, Field(ge=1, le=100)] = 50

    def custom_field(self) -> tuple[str, str] | None:
        if self.field is None:
            return None
        key, _, value = self.field.partition(":")
        return key.strip(), value.strip()


class IdentityOut(BaseModel):
    """Who is behind a nickname: shown to circle admins and the institution's admins only."""

    display_name: str
    real_name: str | None
    email: str


class DirectoryEntryOut(BaseModel):
    user_id: int
    name: str
    nickname: str | None
    role: CircleRole
    member_type: MemberType
    verified: bool
    position: str | None
    education: str | None
    industry: str | None
    custom_fields: dict[str, str]
    joined_at: datetime
    identity: IdentityOut | None = None

    @classmethod
    def of(cls, member: CircleMember, user: User, reveal: bool) -> DirectoryEntryOut:
        identity = IdentityOut(display_name=user.display_name, real_name=user.real_name,
                               email=user.email) if reveal else None
        return cls(user_id=user.id, name=member.nickname or user.display_name, nickname=member.nickname,
                   role=member.role, member_type=member.member_type, verified=user.verified,
                   position=user.position, education=user.education, industry=user.industry,
                   custom_fields=user.custom_fields, joined_at=member.joined_at, identity=identity)


class DirectoryOut(BaseModel):
    members: list[DirectoryEntryOut]
    next_after: int | None


class MembershipMeIn(Request):
    nickname: Nickname | None = None
    notification_level: NotificationLevel | None = None

    @model_validator(mode="after")
    def _level_not_null(self) -> MembershipMeIn:
        if "notification_level" in self.model_fields_set and self.notification_level is None:
            raise ValueError("notification_level cannot be null")
        return self


class MemberPatchIn(Request):
    role: CircleRole | None = None
    member_type: MemberType | None = None


class BanIn(Request):
    user_id: Id
    reason: Reason = ""


class BanOut(BaseModel):
    user_id: int
    display_name: str
    reason: str
    created_at: datetime


class BanListOut(BaseModel):
    bans: list[BanOut]


class TransferIn(Request):
    user_id: Id


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    action: str
    actor_id: int | None
    target_user_id: int | None
    target_id: int | None
    details: dict[str, Any]
    created_at: datetime


class AuditListOut(BaseModel):
    entries: list[AuditOut]
    next_before: int | None

    @classmethod
    def of(cls, entries: list[AuditEntry], limit: int) -> AuditListOut:
        return cls(entries=[AuditOut.model_validate(e) for e in entries],
                   next_before=entries[-1].id if len(entries) == limit else None)


class PageQuery(Query):
    before: Id | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


# --- the feed ---


class PostIn(Request):
    title: PostTitle | None = None
    body: PostBody
    section_id: Id | None = None


class PostPatchIn(Request):
    title: PostTitle | None = None
    body: PostBody | None = None
    section_id: Id | None = None

    @model_validator(mode="after")
    def _body_not_null(self) -> PostPatchIn:
        if "body" in self.model_fields_set and self.body is None:
            raise ValueError("body cannot be null")
        return self


class PinIn(Request):
    pinned: bool


class AuthorOut(BaseModel):
    user_id: int
    name: str
    verified: bool

    @classmethod
    def of(cls, author: feed_db.Author | None) -> AuthorOut | None:
        return None if author is None else cls(user_id=author.user_id, name=author.name, verified=author.verified)


class PostOut(BaseModel):
    id: int
    circle_id: str
    section_id: int | None
    title: str | None
    body: str
    author: AuthorOut | None
    pinned: bool
    created_at: datetime
    edited_at: datetime | None
    reactions: dict[str, int]
    my_reactions: list[str]
    comment_count: int


class FeedOut(BaseModel):
    pinned: list[PostOut]
    posts: list[PostOut]
    next_before: int | None = Field(description="pass as ?before= for the next page; null on the last")


class FeedQuery(Query):
    section_id: Id | None = None
    before: Id | None = None
    limit: Annotated[int, Field(ge=1, le=50)] = 20


class CommentIn(Request):
    body: CommentBody
    parent_id: Id | None = None


class CommentPatchIn(Request):
    body: CommentBody


class CommentOut(BaseModel):
    id: int
    post_id: int
    parent_id: int | None
    author: AuthorOut | None
    body: str
    created_at: datetime
    edited_at: datetime | None

    @classmethod
    def of(cls, comment: Comment, author: feed_db.Author | None) -> CommentOut:
        return cls(id=comment.id, post_id=comment.post_id, parent_id=comment.parent_id, author=AuthorOut.of(author),
                   body=comment.body, created_at=comment.created_at, edited_at=comment.edited_at)


class CommentListOut(BaseModel):
    comments: list[CommentOut]
    next_after: int | None


class CommentsQuery(Query):
    after: Id | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 100
