"""A circle's feed: posts in sections, pinning, comments with one level of replies, and reactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import Conflict, InvalidInput, NotFound
from server import policy
from server.db import circles as circles_db
from server.db import feed as feed_db
from server.db.models import Comment, Post, ReactionKind, utcnow
from server.services.circles import CircleContext, open_circle

Action = policy.CircleAction
MAX_PINNED = 10


@dataclass(frozen=True, slots=True)
class PostView:
    post: feed_db.PostFields
    author: feed_db.Author | None
    stats: feed_db.PostStats
    comments: int


@dataclass(frozen=True, slots=True)
class FeedPage:
    pinned: list[PostView]
    posts: list[PostView]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class CommentView:
    comment: Comment
    author: feed_db.Author | None


async def _views(db: AsyncSession, context: CircleContext, rows: list[feed_db.PostRow]) -> list[PostView]:
    """Reaction counts for a whole page at once: a fixed number of queries whatever the page size."""
    viewer = context.actor.user_id if context.actor else None
    stats = await feed_db.reaction_stats(db, [row.post.id for row in rows], viewer)
    return [PostView(row.post, row.author, stats[row.post.id], row.comments) for row in rows]


async def _view(db: AsyncSession, context: CircleContext, post: Post) -> PostView:
    await db.flush()
    return (await _views(db, context, await feed_db.post_rows(db, context.circle.id, [post.id])))[0]


async def _section_ok(db: AsyncSession, circle_id: str, section_id: int | None) -> None:
    if section_id is not None and await circles_db.get_section(db, circle_id, section_id) is None:
        raise InvalidInput("no such section in this circle", code="unknown_section",
                           details=[{"field": "section_id", "problem": "no such section"}])


async def feed(
    db: AsyncSession, actor: policy.Actor | None, circle_id: str, *, section_id: int | None, before: int | None,
    limit: int,
) -> FeedPage:
    context = await open_circle(db, actor, circle_id, Action.READ)
    pinned = await feed_db.pinned_posts(db, circle_id, section_id, MAX_PINNED) if before is None else []
    page = await feed_db.feed_page(db, circle_id, section_id, before, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    views = await _views(db, context, pinned + page)
    return FeedPage(views[: len(pinned)], views[len(pinned):], page[-1].post.id if more and page else None)


async def _post(db: AsyncSession, context: CircleContext, post_id: int) -> Post:
    post = await feed_db.get_post(db, context.circle.id, post_id)
    if post is None:
        raise NotFound("no such post")
    return post


async def get_post(db: AsyncSession, actor: policy.Actor | None, circle_id: str, post_id: int) -> PostView:
    context = await open_circle(db, actor, circle_id, Action.READ)
    return await _view(db, context, await _post(db, context, post_id))


async def create_post(
    db: AsyncSession, actor: policy.Actor, circle_id: str, *, title: str | None, body: str, section_id: int | None
) -> PostView:
    context = await open_circle(db, actor, circle_id, Action.CONTRIBUTE)
    await _section_ok(db, circle_id, section_id)
    post = await feed_db.add_post(db, circle_id=circle_id, author_id=actor.user_id, title=title, body=body,
                                  section_id=section_id)
    return await _view(db, context, post)


async def edit_post(
    db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int, changes: dict[str, Any]
) -> PostView:
    context = await open_circle(db, actor, circle_id, Action.CONTRIBUTE)
    post = await _post(db, context, post_id)
    policy.check_author(actor, post.author_id)
    if "section_id" in changes:
        await _section_ok(db, circle_id, changes["section_id"])
    for name, value in changes.items():
        setattr(post, name, value)
    post.edited_at = utcnow()
    await db.flush()
    return await _view(db, context, post)


async def delete_post(db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int) -> None:
    row = await open_circle(db, actor, circle_id, Action.VIEW)
    post = await _post(db, row, post_id)
    policy.check_delete_content(actor, row.facts, row.standing, post.author_id)
    if post.author_id != actor.user_id:
        await circles_db.audit(db, circle_id, actor.user_id, "delete_post", target_user_id=post.author_id,
                               target_id=post.id, details={"title": post.title or "", "excerpt": post.body[:200]})
    await feed_db.delete_post(db, post)


async def set_pinned(db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int, pinned: bool) -> PostView:
    context = await open_circle(db, actor, circle_id, Action.MODERATE, lock=True)
    post = await _post(db, context, post_id)
    if pinned and post.pinned_at is None:
        if await feed_db.count_pinned(db, circle_id) >= MAX_PINNED:
            raise Conflict(f"at most {MAX_PINNED} posts can be pinned", code="pin_limit")
        post.pinned_at = utcnow()
        await circles_db.audit(db, circle_id, actor.user_id, "pin", target_user_id=post.author_id, target_id=post.id)
    elif not pinned and post.pinned_at is not None:
        post.pinned_at = None
        await circles_db.audit(db, circle_id, actor.user_id, "unpin", target_user_id=post.author_id,
                               target_id=post.id)
    await db.flush()
    return await _view(db, context, post)


# --- comments ---


async def _comment_views(db: AsyncSession, circle_id: str, comments: list[Comment]) -> list[CommentView]:
    authors = await feed_db.authors(db, circle_id, {c.author_id for c in comments if c.author_id is not None})
    return [CommentView(c, authors.get(c.author_id) if c.author_id else None) for c in comments]


async def comments(
    db: AsyncSession, actor: policy.Actor | None, circle_id: str, post_id: int, after: int | None, limit: int
) -> list[CommentView]:
    context = await open_circle(db, actor, circle_id, Action.READ)
    await _post(db, context, post_id)
    return await _comment_views(db, circle_id, await feed_db.list_comments(db, post_id, after, limit))


async def add_comment(
    db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int, *, body: str, parent_id: int | None
) -> CommentView:
    context = await open_circle(db, actor, circle_id, Action.CONTRIBUTE)
    await _post(db, context, post_id)
    if parent_id is not None:
        parent = await feed_db.get_comment(db, post_id, parent_id)
        if parent is None:
            raise InvalidInput("no such comment on this post", code="unknown_parent")
        if parent.parent_id is not None:
            raise InvalidInput("replies go one level deep: reply to the top comment", code="reply_depth")
    comment = await feed_db.add_comment(db, post_id=post_id, author_id=actor.user_id, body=body, parent_id=parent_id)
    return (await _comment_views(db, circle_id, [comment]))[0]


async def _comment(db: AsyncSession, context: CircleContext, post_id: int, comment_id: int) -> Comment:
    await _post(db, context, post_id)
    comment = await feed_db.get_comment(db, post_id, comment_id)
    if comment is None:
        raise NotFound("no such comment")
    return comment


async def edit_comment(
    db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int, comment_id: int, body: str
) -> CommentView:
    context = await open_circle(db, actor, circle_id, Action.CONTRIBUTE)
    comment = await _comment(db, context, post_id, comment_id)
    policy.check_author(actor, comment.author_id)
    comment.body, comment.edited_at = body, utcnow()
    await db.flush()
    return (await _comment_views(db, circle_id, [comment]))[0]


async def delete_comment(db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int, comment_id: int) -> None:
    context = await open_circle(db, actor, circle_id, Action.VIEW)
    comment = await _comment(db, context, post_id, comment_id)
    policy.check_delete_content(actor, context.facts, context.standing, comment.author_id)
    if comment.author_id != actor.user_id:
        await circles_db.audit(db, circle_id, actor.user_id, "delete_comment", target_user_id=comment.author_id,
                               target_id=comment.id, details={"post_id": post_id, "excerpt": comment.body[:200]})
    await feed_db.delete_comment(db, comment)


# --- reactions ---


async def react(
    db: AsyncSession, actor: policy.Actor, circle_id: str, post_id: int, kind: ReactionKind, on: bool
) -> PostView:
    context = await open_circle(db, actor, circle_id, Action.CONTRIBUTE)
    post = await _post(db, context, post_id)
    if on:
        await feed_db.add_reaction(db, post_id, actor.user_id, kind)
    else:
        await feed_db.remove_reaction(db, post_id, actor.user_id, kind)
    return await _view(db, context, post)
