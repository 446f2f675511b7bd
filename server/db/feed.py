"""Queries over a circle's feed: posts, comments and reactions. Pages are keysets; counts come in batches."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Select, and_, case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import CircleMember, Comment, Post, Reaction, ReactionKind, User


@dataclass(slots=True)
class PostStats:
    reactions: dict[str, int] = field(default_factory=dict)
    mine: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Author:
    user_id: int
    name: str  # the circle nickname when set, else the display name
    verified: bool


async def add_post(
    db: AsyncSession, *, circle_id: str, author_id: int, title: str | None, body: str, section_id: int | None
) -> Post:
    post = Post(circle_id=circle_id, author_id=author_id, title=title, body=body, section_id=section_id)
    db.add(post)
    await db.flush()
    return post


async def get_post(db: AsyncSession, circle_id: str, post_id: int) -> Post | None:
    post = await db.get(Post, post_id)
    return post if post is not None and post.circle_id == circle_id else None


async def delete_post(db: AsyncSession, post: Post) -> None:
    await db.delete(post)
    await db.flush()


class PostFields(Protocol):
    """A post's columns, whether read as an ORM object (to change it) or as a plain row (to show it)."""

    id: int
    circle_id: str
    section_id: int | None
    author_id: int | None
    title: str | None
    body: str
    pinned_at: datetime | None
    created_at: datetime
    edited_at: datetime | None


@dataclass(frozen=True, slots=True)
class PostRow:
    post: PostFields
    author: Author | None
    comments: int


_POST_COLUMNS = tuple(Post.__table__.c)
_EXTRA = 5  # author id, display name, verified, nickname, comment count


def _post_rows() -> Select[Any]:
    """Posts as plain rows (no ORM identity map: pages are only shown), with their author as shown in the circle
    and their comment count: one statement per page."""
    comment_count = (
        select(func.count()).where(Comment.post_id == Post.id).correlate(Post).scalar_subquery()
    )
    return (
        select(*_POST_COLUMNS, User.id.label("author_uid"), User.display_name.label("author_name"),
               User.verified.label("author_verified"), CircleMember.nickname.label("author_nickname"),
               comment_count.label("comment_count"))
        .outerjoin(User, User.id == Post.author_id)
        .outerjoin(CircleMember, and_(CircleMember.circle_id == Post.circle_id, CircleMember.user_id == User.id))
    )


async def _rows(db: AsyncSession, stmt: Select[Any]) -> list[PostRow]:
    rows = (await db.execute(stmt)).all()
    posts = []
    for row in rows:
        uid, name, verified, nickname, comments = row[-_EXTRA:]
        author = Author(uid, nickname or name, verified) if uid is not None else None
        posts.append(PostRow(cast(PostFields, row), author, int(comments)))
    return posts


async def feed_page(
    db: AsyncSession, circle_id: str, section_id: int | None, before_id: int | None, limit: int
) -> list[PostRow]:
    """Unpinned posts, newest first, strictly older than ``before_id``: new posts never shift later pages."""
    stmt = _post_rows().where(Post.circle_id == circle_id, Post.pinned_at.is_(None))
    if section_id is not None:
        stmt = stmt.where(Post.section_id == section_id)
    if before_id is not None:
        stmt = stmt.where(Post.id < before_id)
    return await _rows(db, stmt.order_by(Post.id.desc()).limit(limit))


async def pinned_posts(db: AsyncSession, circle_id: str, section_id: int | None, limit: int) -> list[PostRow]:
    stmt = _post_rows().where(Post.circle_id == circle_id, Post.pinned_at.is_not(None))
    if section_id is not None:
        stmt = stmt.where(Post.section_id == section_id)
    return await _rows(db, stmt.order_by(Post.pinned_at.desc(), Post.id.desc()).limit(limit))


async def post_rows(db: AsyncSession, circle_id: str, post_ids: list[int]) -> list[PostRow]:
    """The given posts of the circle, in the order given."""
    found = {row.post.id: row for row in await _rows(db, _post_rows().where(
        Post.circle_id == circle_id, Post.id.in_(post_ids)))}
    return [found[pid] for pid in post_ids if pid in found]


async def count_pinned(db: AsyncSession, circle_id: str) -> int:
    found = await db.execute(select(func.count()).where(Post.circle_id == circle_id, Post.pinned_at.is_not(None)))
    return int(found.scalar_one())


async def reaction_stats(db: AsyncSession, post_ids: list[int], viewer_id: int | None) -> dict[int, PostStats]:
    """Reaction counts by kind and the viewer's own reactions for a whole page, in one grouped query."""
    stats: dict[int, PostStats] = defaultdict(PostStats)
    if not post_ids:
        return stats
    mine = func.max(case((Reaction.user_id == (viewer_id if viewer_id is not None else -1), 1), else_=0))
    rows = await db.execute(
        select(Reaction.post_id, Reaction.kind, func.count(), mine).where(Reaction.post_id.in_(post_ids))
        .group_by(Reaction.post_id, Reaction.kind).order_by(Reaction.post_id, Reaction.kind)
    )
    for post_id, kind, count, by_viewer in rows:
        stats[post_id].reactions[kind.value] = int(count)
        if by_viewer:
            stats[post_id].mine.append(kind.value)
    return stats


async def authors(db: AsyncSession, circle_id: str, user_ids: set[int]) -> dict[int, Author]:
    """How each author appears in this circle, in one query."""
    if not user_ids:
        return {}
    rows = await db.execute(
        select(User.id, User.display_name, User.verified, CircleMember.nickname)
        .outerjoin(CircleMember, and_(CircleMember.user_id == User.id, CircleMember.circle_id == circle_id))
        .where(User.id.in_(user_ids))
    )
    return {uid: Author(uid, nickname or name, verified) for uid, name, verified, nickname in rows}


async def add_comment(
    db: AsyncSession, *, post_id: int, author_id: int, body: str, parent_id: int | None
) -> Comment:
    comment = Comment(post_id=post_id, author_id=author_id, body=body, parent_id=parent_id)
    db.add(comment)
    await db.flush()
    return comment


async def get_comment(db: AsyncSession, post_id: int, comment_id: int) -> Comment | None:
    comment = await db.get(Comment, comment_id)
    return comment if comment is not None and comment.post_id == post_id else None


async def delete_comment(db: AsyncSession, comment: Comment) -> None:
    await db.delete(comment)
    await db.flush()


async def list_comments(db: AsyncSession, post_id: int, after_id: int | None, limit: int) -> list[Comment]:
    stmt = select(Comment).where(Comment.post_id == post_id)
    if after_id is not None:
        stmt = stmt.where(Comment.id > after_id)
    return list((await db.execute(stmt.order_by(Comment.id).limit(limit))).scalars())


async def add_reaction(db: AsyncSession, post_id: int, user_id: int, kind: ReactionKind) -> None:
    """Idempotent: reacting twice with the same kind leaves one reaction."""
    if await db.get(Reaction, (post_id, user_id, kind)) is not None:
        return
    try:
        async with db.begin_nested():
            db.add(Reaction(post_id=post_id, user_id=user_id, kind=kind))
    except IntegrityError:
        pass  # a concurrent identical reaction won: the outcome is the same


async def remove_reaction(db: AsyncSession, post_id: int, user_id: int, kind: ReactionKind) -> None:
    await db.execute(delete(Reaction).where(
        Reaction.post_id == post_id, Reaction.user_id == user_id, Reaction.kind == kind))
