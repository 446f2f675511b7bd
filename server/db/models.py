"""The relational schema as SQLAlchemy 2 models. Changes here go with an Alembic migration."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite keeps no zone, so store naive UTC and re-attach it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class InstitutionRole(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    TEACHER = "teacher"
    STAFF = "staff"


class SessionKind(enum.StrEnum):
    COOKIE = "cookie"
    BEARER = "bearer"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable, and adding a value is a small migration.
    return Enum(cls, name=name, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e],
                create_constraint=True, validate_strings=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(80))
    real_name: Mapped[str | None] = mapped_column(String(120))
    position: Mapped[str | None] = mapped_column(String(120))
    education: Mapped[str | None] = mapped_column(String(120))
    industry: Mapped[str | None] = mapped_column(String(120))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verified: Mapped[bool] = mapped_column(default=False)
    is_site_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuthSession(Base):
    """A signed-in session. Only a hash of the token's identifier is stored; logout deletes the row."""

    __tablename__ = "auth_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[SessionKind] = mapped_column(_enum(SessionKind, "session_kind"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InstitutionMember(Base):
    __tablename__ = "institution_members"

    institution_id: Mapped[int] = mapped_column(
        ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[InstitutionRole] = mapped_column(_enum(InstitutionRole, "institution_role"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- circles -------------------------------------------------------------------------------------------------------


class CircleKind(enum.StrEnum):
    COURSE = "course"
    COMMUNITY = "community"


class Visibility(enum.StrEnum):
    PUBLIC = "public"  # listed, and readable by anyone
    UNLISTED = "unlisted"  # reachable by its link (the unguessable id), not listed
    PRIVATE = "private"  # members only; to anyone else it does not exist


class JoinPolicy(enum.StrEnum):
    OPEN = "open"
    APPLICATION = "application"
    INVITE = "invite"


class ChatHistory(enum.StrEnum):
    ALL = "all"  # new members read everything said before they joined
    SINCE_JOIN = "since_join"  # new members read only what follows their joining


class CircleRole(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    TEACHER = "teacher"
    MEMBER = "member"


class MemberType(enum.StrEnum):
    MEMBER = "member"
    CUSTOMER = "customer"
    FAN = "fan"


class NotificationLevel(enum.StrEnum):
    ALL = "all"
    MENTIONS = "mentions"
    NONE = "none"


class ApplicationStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReactionKind(enum.StrEnum):
    LIKE = "like"
    HEART = "heart"
    LAUGH = "laugh"
    WOW = "wow"
    SAD = "sad"
    CLAP = "clap"


CIRCLE_ID_LENGTH = 12


class Circle(Base):
    __tablename__ = "circles"

    # Random and unguessable: the id is also the link that reaches an unlisted circle.
    id: Mapped[str] = mapped_column(String(CIRCLE_ID_LENGTH), primary_key=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[CircleKind] = mapped_column(_enum(CircleKind, "circle_kind"))
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility, "circle_visibility"))
    join_policy: Mapped[JoinPolicy] = mapped_column(_enum(JoinPolicy, "circle_join_policy"))
    member_cap: Mapped[int] = mapped_column(default=500)
    chat_history: Mapped[ChatHistory] = mapped_column(_enum(ChatHistory, "circle_chat_history"))
    application_form: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    # The chat's sequence counter: bumped in the same transaction that stores the message, so numbers are gapless.
    chat_last_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    chat_read_only: Mapped[bool] = mapped_column(default=False, server_default=false())


class CircleSection(Base):
    __tablename__ = "circle_sections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(default=0)


class CircleMember(Base):
    __tablename__ = "circle_members"

    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[CircleRole] = mapped_column(_enum(CircleRole, "circle_role"))
    member_type: Mapped[MemberType] = mapped_column(_enum(MemberType, "circle_member_type"), default=MemberType.MEMBER)
    nickname: Mapped[str | None] = mapped_column(String(40))
    notification_level: Mapped[NotificationLevel] = mapped_column(
        _enum(NotificationLevel, "notification_level"), default=NotificationLevel.ALL
    )
    muted_until: Mapped[datetime | None] = mapped_column(default=None)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    joined_seq: Mapped[int] = mapped_column(default=0, server_default="0")  # the chat's last seq when they joined
    last_read_seq: Mapped[int] = mapped_column(default=0, server_default="0")


class CircleBan(Base):
    __tablename__ = "circle_bans"

    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    banned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JoinRequest(Base):
    __tablename__ = "join_requests"
    __table_args__ = (
        # At most one pending application per person and circle.
        Index("uq_join_requests_pending", "circle_id", "user_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[ApplicationStatus] = mapped_column(_enum(ApplicationStatus, "application_status"))
    reason: Mapped[str | None] = mapped_column(String(500))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[CircleRole] = mapped_column(_enum(CircleRole, "invite_role"))
    max_uses: Mapped[int | None] = mapped_column(default=None)
    uses: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        # The feed: newest first within a circle (and within a section), by keyset on id.
        Index("ix_posts_feed", "circle_id", "id"),
        Index("ix_posts_section_feed", "circle_id", "section_id", "id"),
        # Pinned posts head the first page: a few rows per circle, found without scanning the feed.
        Index("ix_posts_pinned", "circle_id", "pinned_at", sqlite_where=text("pinned_at IS NOT NULL"),
              postgresql_where=text("pinned_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"))
    section_id: Mapped[int | None] = mapped_column(ForeignKey("circle_sections.id", ondelete="SET NULL"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    title: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    pinned_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_post", "post_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)


class Reaction(Base):
    __tablename__ = "reactions"

    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    kind: Mapped[ReactionKind] = mapped_column(_enum(ReactionKind, "reaction_kind"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Moderation log of a circle: who removed, banned, deleted or pinned what, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_circle", "circle_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    target_id: Mapped[int | None] = mapped_column(default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatMessage(Base):
    """A circle chat message: numbered per circle, gapless and strictly increasing."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("circle_id", "seq"),
        # A resend with the same client-generated id finds the original instead of posting twice.
        UniqueConstraint("circle_id", "author_id", "client_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


# --- live classes --------------------------------------------------------------------------------------------------


class ClassState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class ClassSession(Base):
    """A scheduled lesson in a circle. ``settings`` holds the room's rules (``rooms.classroom.Settings``) and the
    attendance rule (``rooms.attendance.Rule``), as validated by the API."""

    __tablename__ = "class_sessions"
    __table_args__ = (Index("ix_class_sessions_circle", "circle_id", "scheduled_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    circle_id: Mapped[str] = mapped_column(ForeignKey("circles.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    scheduled_start: Mapped[datetime] = mapped_column()
    scheduled_end: Mapped[datetime] = mapped_column()
    state: Mapped[ClassState] = mapped_column(_enum(ClassState, "class_state"), default=ClassState.SCHEDULED)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    recap_post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"), default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The in-class chat's sequence counter, bumped in the transaction that stores the message (as for circles).
    chat_last_seq: Mapped[int] = mapped_column(default=0, server_default="0")


class ClassTeacher(Base):
    __tablename__ = "class_teachers"

    session_id: Mapped[int] = mapped_column(ForeignKey("class_sessions.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class AttendanceInterval(Base):
    """One connection's stay in a live class: opened when it is seated, closed when it leaves, drops or the class
    ends. A student's intervals (rejoins, several devices) are merged when the report is made."""

    __tablename__ = "attendance_intervals"
    __table_args__ = (Index("ix_attendance_intervals_session", "session_id", "user_id", "joined_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("class_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    connection: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column()
    left_at: Mapped[datetime | None] = mapped_column(default=None)
    reason: Mapped[str | None] = mapped_column(String(16), default=None)  # left, disconnected, removed, ended


class ClassPoll(Base):
    __tablename__ = "class_polls"
    __table_args__ = (Index("ix_class_polls_session", "session_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("class_sessions.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(500))
    options: Mapped[list[str]] = mapped_column(JSON)
    multiple: Mapped[bool] = mapped_column(default=False)
    correct: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    state: Mapped[str] = mapped_column(String(16), default="draft")  # rooms.polls.PollState
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class PollAnswer(Base):
    __tablename__ = "poll_answers"

    poll_id: Mapped[int] = mapped_column(ForeignKey("class_polls.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    choice: Mapped[list[int]] = mapped_column(JSON)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClassMessage(Base):
    """In-class chat: numbered per session, gapless, idempotent by client id, like circle chat."""

    __tablename__ = "class_messages"
    __table_args__ = (
        UniqueConstraint("session_id", "seq"),
        UniqueConstraint("session_id", "author_id", "client_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("class_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
