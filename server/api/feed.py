"""Feed routes: posts, pinning, comments and reactions of a circle."""

from __future__ import annotations

from aiohttp import web

from rooms.errors import InvalidInput
from server.api.circle_schemas import (
    AuthorOut,
    CommentIn,
    CommentListOut,
    CommentOut,
    CommentPatchIn,
    CommentsQuery,
    FeedOut,
    FeedQuery,
    PinIn,
    PostIn,
    PostOut,
    PostPatchIn,
)
from server.api.identity import any_actor, user_actor
from server.api.routes import Route
from server.api.wire import ok, parse_body, parse_query, path_circle_id, path_int, transaction
from server.db.models import ReactionKind
from server.services import feed


def _post_out(view: feed.PostView) -> PostOut:
    post = view.post
    return PostOut(id=post.id, circle_id=post.circle_id, section_id=post.section_id, title=post.title,
                   body=post.body, author=AuthorOut.of(view.author), pinned=post.pinned_at is not None,
                   created_at=post.created_at, edited_at=post.edited_at, reactions=view.stats.reactions,
                   my_reactions=view.stats.mine, comment_count=view.comments)


async def list_feed(request: web.Request) -> web.Response:
    query = parse_query(request, FeedQuery)
    async with transaction(request) as db:
        page = await feed.feed(db, await any_actor(request, db), path_circle_id(request), section_id=query.section_id,
                               before=query.before, limit=query.limit)
    return ok(FeedOut(pinned=[_post_out(v) for v in page.pinned], posts=[_post_out(v) for v in page.posts],
                      next_before=page.next_before))


async def create_post(request: web.Request) -> web.Response:
    body = await parse_body(request, PostIn)
    async with transaction(request) as db:
        view = await feed.create_post(db, await user_actor(request, db), path_circle_id(request), title=body.title,
                                      body=body.body, section_id=body.section_id)
    return ok(_post_out(view), status=201)


async def get_post(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        view = await feed.get_post(db, await any_actor(request, db), path_circle_id(request),
                                   path_int(request, "post_id"))
    return ok(_post_out(view))


async def edit_post(request: web.Request) -> web.Response:
    body = await parse_body(request, PostPatchIn)
    async with transaction(request) as db:
        view = await feed.edit_post(db, await user_actor(request, db), path_circle_id(request),
                                    path_int(request, "post_id"), body.model_dump(include=body.model_fields_set))
    return ok(_post_out(view))


async def delete_post(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        await feed.delete_post(db, await user_actor(request, db), path_circle_id(request), path_int(request, "post_id"))
    return web.Response(status=204)


async def set_pinned(request: web.Request) -> web.Response:
    body = await parse_body(request, PinIn)
    async with transaction(request) as db:
        view = await feed.set_pinned(db, await user_actor(request, db), path_circle_id(request),
                                     path_int(request, "post_id"), body.pinned)
    return ok(_post_out(view))


def _kind(request: web.Request) -> ReactionKind:
    raw = request.match_info["kind"]
    try:
        return ReactionKind(raw)
    except ValueError:
        allowed = ", ".join(kind.value for kind in ReactionKind)
        raise InvalidInput(f"unknown reaction {raw!r}; use one of {allowed}", code="unknown_reaction") from None


async def _react(request: web.Request, on: bool) -> web.Response:
    kind = _kind(request)
    async with transaction(request) as db:
        view = await feed.react(db, await user_actor(request, db), path_circle_id(request),
                                path_int(request, "post_id"), kind, on)
    return ok(_post_out(view))


async def add_reaction(request: web.Request) -> web.Response:
    return await _react(request, on=True)


async def remove_reaction(request: web.Request) -> web.Response:
    return await _react(request, on=False)


async def list_comments(request: web.Request) -> web.Response:
    query = parse_query(request, CommentsQuery)
    async with transaction(request) as db:
        views = await feed.comments(db, await any_actor(request, db), path_circle_id(request),
                                    path_int(request, "post_id"), query.after, query.limit + 1)
    page = views[: query.limit]
    return ok(CommentListOut(comments=[CommentOut.of(v.comment, v.author) for v in page],
                             next_after=page[-1].comment.id if len(views) > query.limit else None))


async def add_comment(request: web.Request) -> web.Response:
    body = await parse_body(request, CommentIn)
    async with transaction(request) as db:
        view = await feed.add_comment(db, await user_actor(request, db), path_circle_id(request),
                                      path_int(request, "post_id"), body=body.body, parent_id=body.parent_id)
    return ok(CommentOut.of(view.comment, view.author), status=201)


async def edit_comment(request: web.Request) -> web.Response:
    body = await parse_body(request, CommentPatchIn)
    async with transaction(request) as db:
        view = await feed.edit_comment(db, await user_actor(request, db), path_circle_id(request),
                                       path_int(request, "post_id"), path_int(request, "comment_id"), body.body)
    return ok(CommentOut.of(view.comment, view.author))


async def delete_comment(request: web.Request) -> web.Response:
    async with transaction(request) as db:
        await feed.delete_comment(db, await user_actor(request, db), path_circle_id(request),
                                  path_int(request, "post_id"), path_int(request, "comment_id"))
    return web.Response(status=204)


P = "/api/circles/{circle_id}/posts"
T = "feed"
ROUTES = [
    Route("GET", P, list_feed, "The feed: pinned posts on top (first page), then newest first by cursor", T,
          auth="optional", query=FeedQuery, response=FeedOut),
    Route("POST", P, create_post, "Post to the circle (members)", T, body=PostIn, response=PostOut, status=201),
    Route("GET", f"{P}/{{post_id}}", get_post, "One post with its counts", T, auth="optional", response=PostOut),
    Route("PATCH", f"{P}/{{post_id}}", edit_post, "Edit your post", T, body=PostPatchIn, response=PostOut),
    Route("DELETE", f"{P}/{{post_id}}", delete_post, "Delete a post (author or moderators)", T, status=204),
    Route("PUT", f"{P}/{{post_id}}/pinned", set_pinned, "Pin or unpin (moderators)", T, body=PinIn,
          response=PostOut),
    Route("PUT", f"{P}/{{post_id}}/reactions/{{kind}}", add_reaction,
          "React: like, heart, laugh, wow, sad or clap (idempotent)", T, response=PostOut),
    Route("DELETE", f"{P}/{{post_id}}/reactions/{{kind}}", remove_reaction, "Take your reaction back", T,
          response=PostOut),
    Route("GET", f"{P}/{{post_id}}/comments", list_comments, "Comments, oldest first; replies carry parent_id", T,
          auth="optional", query=CommentsQuery, response=CommentListOut),
    Route("POST", f"{P}/{{post_id}}/comments", add_comment, "Comment, or reply to a top-level comment", T,
          body=CommentIn, response=CommentOut, status=201),
    Route("PATCH", f"{P}/{{post_id}}/comments/{{comment_id}}", edit_comment, "Edit your comment", T,
          body=CommentPatchIn, response=CommentOut),
    Route("DELETE", f"{P}/{{post_id}}/comments/{{comment_id}}", delete_comment,
          "Delete a comment and its replies (author or moderators)", T, status=204),
]
