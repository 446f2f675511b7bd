"""A circle's feed over real HTTP against the real app, on SQLite and PostgreSQL.

Posts, editing and deleting, pinning, comments with one level of replies, reactions, keyset paging, sections, and
bad input. Every refusal is followed by reading the state back over the API to show that nothing changed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import event

from server import keys
from tests.helpers import Api, Person, Reply

KINDS = ("like", "heart", "laugh", "wow", "sad", "clap")
NO_SUCH_CIRCLE = "0000000000OO"  # well-formed for the router, but 0 and O are not in the id alphabet
_serial = itertools.count(1)


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def assert_error(reply: Reply, status: int, code: str | None = None) -> None:
    """A JSON error of the documented shape, with the expected status and (if given) machine code."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply.headers
    assert isinstance(reply.body, dict) and isinstance(reply.body.get("error"), dict), reply.body
    assert isinstance(reply.body["error"].get("code"), str), reply.body
    if code is not None:
        assert reply.error_code == code, reply.body


async def expect(api: Api, status: int, method: str, path: str, who: Person | None = None, json: Any = None) -> Any:
    reply = await api.call(method, path, who, json)
    assert reply.status == status, f"{method} {path}: expected {status}, got {reply.status} {reply.body}"
    return reply.body


@dataclass
class World:
    """A public, open circle with one person in each role, a second plain member, and an outsider."""

    api: Api
    circle: str
    owner: Person
    admin: Person
    teacher: Person
    member: Person
    other: Person
    outsider: Person

    @property
    def posts(self) -> str:
        return f"/api/circles/{self.circle}/posts"

    def post_path(self, post_id: int) -> str:
        return f"{self.posts}/{post_id}"

    async def post(self, who: Person, body: str | None = None, **fields: Any) -> dict[str, Any]:
        payload = {"body": body or f"post {next(_serial)}", **fields}
        result: dict[str, Any] = await expect(self.api, 201, "POST", self.posts, who, payload)
        return result

    async def feed(self, who: Person | None = None, **query: Any) -> dict[str, Any]:
        query.setdefault("limit", 50)
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        result: dict[str, Any] = await expect(self.api, 200, "GET", f"{self.posts}?{qs}", who)
        return result

    async def get(self, post_id: int, who: Person | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await expect(self.api, 200, "GET", self.post_path(post_id), who)
        return result

    async def comments(self, post_id: int, who: Person | None = None) -> list[dict[str, Any]]:
        body = await expect(self.api, 200, "GET", f"{self.post_path(post_id)}/comments", who)
        result: list[dict[str, Any]] = body["comments"]
        return result

    async def comment(self, post_id: int, who: Person, body: str, parent_id: int | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"body": body}
        if parent_id is not None:
            payload["parent_id"] = parent_id
        result: dict[str, Any] = await expect(self.api, 201, "POST", f"{self.post_path(post_id)}/comments", who,
                                              payload)
        return result

    async def react(self, post_id: int, who: Person, kind: str) -> dict[str, Any]:
        result: dict[str, Any] = await expect(self.api, 200, "PUT", f"{self.post_path(post_id)}/reactions/{kind}",
                                              who)
        return result

    async def sections(self) -> list[dict[str, Any]]:
        body = await expect(self.api, 200, "GET", f"/api/circles/{self.circle}/sections")
        result: list[dict[str, Any]] = body["sections"]
        return result

    async def add_section(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await expect(self.api, 201, "POST", f"/api/circles/{self.circle}/sections",
                                              self.owner, {"name": name})
        return result

    async def member_ids(self) -> list[int]:
        body = await expect(self.api, 200, "GET", f"/api/circles/{self.circle}/members?limit=100", self.owner)
        return sorted(m["user_id"] for m in body["members"])

    async def roles(self) -> dict[int, str]:
        body = await expect(self.api, 200, "GET", f"/api/circles/{self.circle}/members?limit=100", self.owner)
        return {m["user_id"]: m["role"] for m in body["members"]}


async def make_circle(api: Api, owner: Person, **fields: Any) -> str:
    body = await expect(api, 201, "POST", "/api/circles", owner, {"name": f"Circle {next(_serial)}", **fields})
    circle_id: str = body["id"]
    return circle_id


async def set_role(api: Api, circle: str, manager: Person, person: Person, role: str) -> None:
    body = await expect(api, 200, "PATCH", f"/api/circles/{circle}/members/{person.id}", manager, {"role": role})
    assert body["role"] == role


@pytest.fixture
async def world(api: Api) -> World:
    owner = await api.register("Owner")
    admin, teacher = await api.register("Admin"), await api.register("Teacher")
    member, other, outsider = await api.register("Member"), await api.register("Other"), await api.register("Outsider")
    circle = await make_circle(api, owner)
    for person in (admin, teacher, member, other):
        await expect(api, 201, "POST", f"/api/circles/{circle}/join", person)
    await set_role(api, circle, owner, admin, "admin")
    await set_role(api, circle, owner, teacher, "teacher")
    return World(api, circle, owner, admin, teacher, member, other, outsider)


def ids(posts: list[dict[str, Any]]) -> list[int]:
    return [p["id"] for p in posts]


# ---------------------------------------------------------------------------------------------------------------
# Posting and reading


async def test_members_post_and_anyone_reads_a_public_feed(world: World) -> None:
    section = await world.add_section("Homework")
    titled = await world.post(world.member, "  First body  ", title="  Hello  ")
    assert (titled["title"], titled["body"]) == ("Hello", "First body")  # stripped
    assert titled["author"] == {"user_id": world.member.id, "name": "Member", "verified": False}
    assert titled["circle_id"] == world.circle
    assert (titled["section_id"], titled["pinned"], titled["edited_at"]) == (None, False, None)
    assert (titled["reactions"], titled["my_reactions"], titled["comment_count"]) == ({}, [], 0)
    untitled = await world.post(world.teacher, "No title here")
    assert untitled["title"] is None
    in_section = await world.post(world.owner, "In a section", section_id=section["id"])
    assert in_section["section_id"] == section["id"]

    member_view = await world.feed(world.member)
    for viewer in (world.outsider, None):  # a signed-in non-member, and anonymous
        view = await world.feed(viewer)
        assert view == member_view
        assert ids(view["posts"]) == [in_section["id"], untitled["id"], titled["id"]]
        assert view["pinned"] == [] and view["next_before"] is None
        assert await world.get(titled["id"], viewer) == titled

    refused = await world.api.call("POST", world.posts, world.outsider, {"body": "let me in"})
    assert_error(refused, 403, "not_a_member")
    anonymous = await world.api.call("POST", world.posts, None, {"body": "anonymous"})
    assert_error(anonymous, 401)
    assert await world.feed(world.member) == member_view


async def test_a_private_circle_feed_is_404_to_non_members(api: Api) -> None:
    owner, insider, outsider = await api.register("Owner"), await api.register("Insider"), await api.register()
    circle = await make_circle(api, owner, visibility="private")
    invite = await expect(api, 201, "POST", f"/api/circles/{circle}/invites", owner, {})
    await expect(api, 201, "POST", f"/api/invites/{invite['token']}/accept", insider)
    posts = f"/api/circles/{circle}/posts"
    post = await expect(api, 201, "POST", posts, insider, {"body": "members only"})
    comment = await expect(api, 201, "POST", f"{posts}/{post['id']}/comments", owner, {"body": "hi"})
    before = await expect(api, 200, "GET", posts, insider)
    assert ids(before["posts"]) == [post["id"]]

    for who in (outsider, None):
        for method, path, json in [
            ("GET", posts, None),
            ("GET", f"{posts}/{post['id']}", None),
            ("GET", f"{posts}/{post['id']}/comments", None),
        ]:
            assert_error(await api.call(method, path, who, json), 404, "not_found")
    for method, path, json in [
        ("POST", posts, {"body": "sneaking in"}),
        ("PATCH", f"{posts}/{post['id']}", {"body": "defaced"}),
        ("DELETE", f"{posts}/{post['id']}", None),
        ("PUT", f"{posts}/{post['id']}/reactions/like", None),
        ("POST", f"{posts}/{post['id']}/comments", {"body": "sneaking in"}),
        ("DELETE", f"{posts}/{post['id']}/comments/{comment['id']}", None),
    ]:
        assert_error(await api.call(method, path, outsider, json), 404, "not_found")
    assert await expect(api, 200, "GET", posts, insider) == before
    assert [c["id"] for c in (await expect(api, 200, "GET", f"{posts}/{post['id']}/comments", owner))["comments"]] \
        == [comment["id"]]


async def test_an_unlisted_circle_feed_is_for_members_only(api: Api) -> None:
    owner, outsider = await api.register("Owner"), await api.register()
    circle = await make_circle(api, owner, visibility="unlisted")
    posts = f"/api/circles/{circle}/posts"
    post = await expect(api, 201, "POST", posts, owner, {"body": "for members"})
    await expect(api, 200, "GET", f"/api/circles/{circle}", outsider)  # the page is readable by link holders
    for who in (outsider, None):
        assert_error(await api.call("GET", posts, who), 403, "not_a_member")
        assert_error(await api.call("GET", f"{posts}/{post['id']}", who), 403, "not_a_member")
    assert ids((await expect(api, 200, "GET", posts, owner))["posts"]) == [post["id"]]


# ---------------------------------------------------------------------------------------------------------------
# Editing, deleting, pinning


async def test_only_the_author_edits_a_post_not_even_admins(world: World) -> None:
    section = await world.add_section("Notes")
    post = await world.post(world.member, "original", title="Original")
    for who in (world.other, world.teacher, world.admin, world.owner):
        assert_error(await world.api.call("PATCH", world.post_path(post["id"]), who, {"body": "hijacked"}),
                     403, "not_author")
    assert_error(await world.api.call("PATCH", world.post_path(post["id"]), world.outsider, {"body": "x"}),
                 403, "not_a_member")
    assert_error(await world.api.call("PATCH", world.post_path(post["id"]), None, {"body": "x"}), 401)
    assert await world.get(post["id"]) == post

    edited = await expect(world.api, 200, "PATCH", world.post_path(post["id"]), world.member,
                          {"body": "revised", "section_id": section["id"]})
    assert (edited["title"], edited["body"], edited["section_id"]) == ("Original", "revised", section["id"])
    assert edited["edited_at"] is not None
    cleared = await expect(world.api, 200, "PATCH", world.post_path(post["id"]), world.member, {"title": None})
    assert cleared["title"] is None and cleared["body"] == "revised"
    assert await world.get(post["id"]) == cleared
    # body cannot be cleared
    assert_error(await world.api.call("PATCH", world.post_path(post["id"]), world.member, {"body": None}), 422)
    assert await world.get(post["id"]) == cleared


async def test_authors_and_moderators_delete_posts_other_members_do_not(world: World) -> None:
    mine, by_owner, by_admin, by_teacher = [await world.post(world.member) for _ in range(4)]
    untouched = await world.post(world.member)
    await world.react(by_owner["id"], world.other, "like")
    await world.comment(by_owner["id"], world.other, "a comment")
    before = await world.feed(world.owner)

    assert_error(await world.api.call("DELETE", world.post_path(mine["id"]), world.other), 403)
    assert_error(await world.api.call("DELETE", world.post_path(mine["id"]), world.outsider), 403, "not_a_member")
    assert_error(await world.api.call("DELETE", world.post_path(mine["id"]), None), 401)
    assert await world.feed(world.owner) == before

    await expect(world.api, 204, "DELETE", world.post_path(mine["id"]), world.member)
    await expect(world.api, 204, "DELETE", world.post_path(by_owner["id"]), world.owner)  # with comment + reaction
    await expect(world.api, 204, "DELETE", world.post_path(by_admin["id"]), world.admin)
    await expect(world.api, 204, "DELETE", world.post_path(by_teacher["id"]), world.teacher)
    for gone in (mine, by_owner, by_admin, by_teacher):
        assert_error(await world.api.call("GET", world.post_path(gone["id"])), 404)
    assert ids((await world.feed())["posts"]) == [untouched["id"]]
    # deleting again is a 404, not a success
    assert_error(await world.api.call("DELETE", world.post_path(mine["id"]), world.member), 404)

    # moderators' deletions of other people's posts are in the audit log; the author's own deletion is not
    audit = await expect(world.api, 200, "GET", f"/api/circles/{world.circle}/audit", world.owner)
    logged = {e["target_id"]: e["actor_id"] for e in audit["entries"] if e["action"] == "delete_post"}
    assert logged == {by_owner["id"]: world.owner.id, by_admin["id"]: world.admin.id,
                      by_teacher["id"]: world.teacher.id}


async def test_moderators_pin_and_unpin_members_do_not(world: World) -> None:
    posts = [await world.post(world.member) for _ in range(6)]
    p = ids(posts)
    before = await world.feed(world.member)
    for who in (world.member, world.other):  # not even the post's author
        assert_error(await world.api.call("PUT", f"{world.post_path(p[0])}/pinned", who, {"pinned": True}), 403)
    assert_error(await world.api.call("PUT", f"{world.post_path(p[0])}/pinned", world.outsider, {"pinned": True}),
                 403, "not_a_member")
    assert await world.feed(world.member) == before
    assert before["pinned"] == []

    for who, post_id in ((world.teacher, p[0]), (world.admin, p[2]), (world.owner, p[1])):
        reply = await expect(world.api, 200, "PUT", f"{world.post_path(post_id)}/pinned", who, {"pinned": True})
        assert reply["pinned"] is True
    # Pinned first, most recently pinned on top, and not repeated among the posts.
    page = await world.feed(world.other, limit=2)
    assert ids(page["pinned"]) == [p[1], p[2], p[0]]
    assert all(post["pinned"] for post in page["pinned"])
    assert ids(page["posts"]) == [p[5], p[4]]
    page2 = await world.feed(world.other, limit=2, before=page["next_before"])
    assert page2["pinned"] == []  # on the first page only
    assert ids(page2["posts"]) == [p[3]] and page2["next_before"] is None

    # A member cannot unpin either.
    assert_error(await world.api.call("PUT", f"{world.post_path(p[1])}/pinned", world.member, {"pinned": False}), 403)
    assert (await world.get(p[1]))["pinned"] is True

    reply = await expect(world.api, 200, "PUT", f"{world.post_path(p[1])}/pinned", world.teacher, {"pinned": False})
    assert reply["pinned"] is False
    page = await world.feed(world.other)
    assert ids(page["pinned"]) == [p[2], p[0]]
    assert ids(page["posts"]) == [p[5], p[4], p[3], p[1]]  # back in its place by id


# ---------------------------------------------------------------------------------------------------------------
# Comments


async def test_comments_have_one_level_of_replies(world: World) -> None:
    post = await world.post(world.member)
    elsewhere = await world.post(world.member)
    top = await world.comment(post["id"], world.other, "top")
    assert (top["parent_id"], top["post_id"], top["author"]["user_id"]) == (None, post["id"], world.other.id)
    reply = await world.comment(post["id"], world.member, "reply", parent_id=top["id"])
    assert reply["parent_id"] == top["id"]
    foreign = await world.comment(elsewhere["id"], world.other, "on another post")
    before = await world.comments(post["id"])
    assert [c["id"] for c in before] == [top["id"], reply["id"]]  # oldest first
    assert (await world.get(post["id"]))["comment_count"] == 2

    path = f"{world.post_path(post['id'])}/comments"
    deep = await world.api.call("POST", path, world.owner, {"body": "too deep", "parent_id": reply["id"]})
    assert_error(deep, 422, "reply_depth")
    for parent in (foreign["id"], 999_999):
        wrong = await world.api.call("POST", path, world.owner, {"body": "lost", "parent_id": parent})
        assert_error(wrong, 422, "unknown_parent")
    assert_error(await world.api.call("POST", path, world.outsider, {"body": "hi"}), 403, "not_a_member")
    for body in ("", "   ", "x" * 5001):
        assert_error(await world.api.call("POST", path, world.member, {"body": body}), 422)
    assert await world.comments(post["id"]) == before
    assert await world.comments(elsewhere["id"]) == [foreign]
    assert (await world.get(post["id"]))["comment_count"] == 2


async def test_comment_edit_and_delete_rights_and_replies_go_with_their_comment(world: World) -> None:
    post = await world.post(world.owner)
    top = await world.comment(post["id"], world.member, "top")
    replies = [await world.comment(post["id"], who, f"reply {i}", parent_id=top["id"])
               for i, who in enumerate((world.other, world.member, world.teacher))]
    second = await world.comment(post["id"], world.other, "second top")
    own_reply = await world.comment(post["id"], world.member, "my reply", parent_id=second["id"])
    assert (await world.get(post["id"]))["comment_count"] == 6
    c = f"{world.post_path(post['id'])}/comments"

    # Editing: the author only.
    for who in (world.other, world.admin, world.owner):
        assert_error(await world.api.call("PATCH", f"{c}/{top['id']}", who, {"body": "hijacked"}), 403, "not_author")
    before = await world.comments(post["id"])
    assert before[0]["body"] == "top" and before[0]["edited_at"] is None
    edited = await expect(world.api, 200, "PATCH", f"{c}/{top['id']}", world.member, {"body": "top, edited"})
    assert edited["body"] == "top, edited" and edited["edited_at"] is not None
    assert (await world.comments(post["id"]))[0] == edited

    # Deleting others' comments: moderators only.
    snapshot = await world.comments(post["id"])
    assert_error(await world.api.call("DELETE", f"{c}/{second['id']}", world.member), 403)
    assert_error(await world.api.call("DELETE", f"{c}/{second['id']}", world.outsider), 403, "not_a_member")
    assert await world.comments(post["id"]) == snapshot

    # The author deletes their own reply; the count follows.
    await expect(world.api, 204, "DELETE", f"{c}/{own_reply['id']}", world.member)
    assert [x["id"] for x in await world.comments(post["id"])] == [top["id"], *ids(replies), second["id"]]
    assert (await world.get(post["id"]))["comment_count"] == 5

    # A teacher deletes a top comment: its three replies go with it.
    await expect(world.api, 204, "DELETE", f"{c}/{top['id']}", world.teacher)
    assert [x["id"] for x in await world.comments(post["id"])] == [second["id"]]
    assert (await world.get(post["id"]))["comment_count"] == 1
    feed_post = next(p for p in (await world.feed())["posts"] if p["id"] == post["id"])
    assert feed_post["comment_count"] == 1
    for gone in replies:
        assert_error(await world.api.call("PATCH", f"{c}/{gone['id']}", gone_author(world, gone), {"body": "x"}), 404)

    # An admin deletes the other's comment.
    await expect(world.api, 204, "DELETE", f"{c}/{second['id']}", world.admin)
    assert await world.comments(post["id"]) == []
    assert (await world.get(post["id"]))["comment_count"] == 0


def gone_author(world: World, comment: dict[str, Any]) -> Person:
    people = (world.owner, world.admin, world.teacher, world.member, world.other)
    return next(p for p in people if p.id == comment["author"]["user_id"])


# ---------------------------------------------------------------------------------------------------------------
# Reactions


async def test_every_reaction_kind_works_and_is_idempotent(world: World) -> None:
    post = await world.post(world.owner)
    for kind in KINDS:
        first = await world.react(post["id"], world.member, kind)
        again = await world.react(post["id"], world.member, kind)
        assert first["reactions"][kind] == 1 and again["reactions"][kind] == 1, (kind, again)
        assert kind in again["my_reactions"]
    mine = await world.get(post["id"], world.member)
    assert mine["reactions"] == dict.fromkeys(KINDS, 1)
    assert mine["my_reactions"] == sorted(KINDS)

    for kind in KINDS:
        removed = await expect(world.api, 200, "DELETE", f"{world.post_path(post['id'])}/reactions/{kind}",
                               world.member)
        assert kind not in removed["reactions"] and kind not in removed["my_reactions"]
    # removing what is not there is harmless
    removed = await expect(world.api, 200, "DELETE", f"{world.post_path(post['id'])}/reactions/like", world.member)
    assert removed["reactions"] == {} and removed["my_reactions"] == []
    assert (await world.get(post["id"], world.member))["reactions"] == {}


async def test_reaction_counts_and_my_reactions_per_viewer(world: World) -> None:
    post = await world.post(world.owner)
    plain = await world.post(world.owner)
    await world.react(post["id"], world.member, "like")
    await world.react(post["id"], world.member, "heart")
    await world.react(post["id"], world.other, "like")
    await world.react(post["id"], world.teacher, "clap")
    expected = {"like": 2, "heart": 1, "clap": 1}
    views = {
        "member": (world.member, ["heart", "like"]),
        "other": (world.other, ["like"]),
        "teacher": (world.teacher, ["clap"]),
        "owner": (world.owner, []),
        "outsider": (world.outsider, []),
        "anonymous": (None, []),
    }
    for name, (who, my) in views.items():
        page = await world.feed(who)
        by_id = {p["id"]: p for p in page["posts"]}
        assert by_id[post["id"]]["reactions"] == expected, name
        assert by_id[post["id"]]["my_reactions"] == my, name
        assert (by_id[plain["id"]]["reactions"], by_id[plain["id"]]["my_reactions"]) == ({}, []), name
        single = await world.get(post["id"], who)
        assert (single["reactions"], single["my_reactions"]) == (expected, my), name

    await expect(world.api, 200, "DELETE", f"{world.post_path(post['id'])}/reactions/like", world.other)
    after = await world.get(post["id"], world.member)
    assert after["reactions"] == {"like": 1, "heart": 1, "clap": 1}
    assert after["my_reactions"] == ["heart", "like"]  # someone else's removal does not touch mine


async def test_a_seventh_reaction_kind_is_refused_and_changes_nothing(world: World) -> None:
    post = await world.post(world.owner)
    await world.react(post["id"], world.member, "like")
    before = await world.get(post["id"], world.member)
    for method in ("PUT", "DELETE"):
        for kind in ("angry", "likes", "thumbsup"):
            reply = await world.api.call(method, f"{world.post_path(post['id'])}/reactions/{kind}", world.member)
            assert_error(reply, 422, "unknown_reaction")
    assert_error(await world.api.call("PUT", f"{world.post_path(post['id'])}/reactions/LIKE", world.member), 404)
    assert_error(await world.api.call("PUT", f"{world.post_path(post['id'])}/reactions/like", world.outsider),
                 403, "not_a_member")
    assert_error(await world.api.call("PUT", f"{world.post_path(post['id'])}/reactions/like"), 401)
    assert await world.get(post["id"], world.member) == before


# ---------------------------------------------------------------------------------------------------------------
# The feed: order, sections, paging, query counts


async def test_feed_is_newest_first_and_filters_by_section(world: World) -> None:
    one, two = await world.add_section("One"), await world.add_section("Two")
    made: dict[int | None, list[int]] = {one["id"]: [], two["id"]: [], None: []}
    for i in range(9):
        section = (one["id"], two["id"], None)[i % 3]
        post = await world.post((world.member, world.other, world.teacher)[i % 3],
                                **({"section_id": section} if section else {}))
        made[section].append(post["id"])
    everything = await world.feed()
    assert ids(everything["posts"]) == sorted(itertools.chain.from_iterable(made.values()), reverse=True)
    for section_id in (one["id"], two["id"]):
        filtered = await world.feed(section_id=section_id)
        assert ids(filtered["posts"]) == sorted(made[section_id], reverse=True)
        assert all(p["section_id"] == section_id for p in filtered["posts"])
        # paging within a section keeps to it
        first = await world.feed(section_id=section_id, limit=2)
        rest = await world.feed(section_id=section_id, limit=2, before=first["next_before"])
        assert ids(first["posts"]) + ids(rest["posts"]) == sorted(made[section_id], reverse=True)
        assert rest["next_before"] is None
    # pinned posts obey the section filter too
    pinned = made[one["id"]][0]
    await expect(world.api, 200, "PUT", f"{world.post_path(pinned)}/pinned", world.owner, {"pinned": True})
    assert ids((await world.feed(section_id=one["id"]))["pinned"]) == [pinned]
    assert (await world.feed(section_id=two["id"]))["pinned"] == []


async def test_keyset_paging_survives_new_posts(world: World) -> None:
    """THE key test: posts written while someone pages neither shift nor repeat nor hide later pages."""
    authors = (world.member, world.other, world.teacher, world.owner)
    original = [(await world.post(authors[i % 4], f"original {i}"))["id"] for i in range(25)]
    assert original == sorted(original) and len(set(original)) == 25

    page1 = await world.feed(world.member, limit=10)
    assert ids(page1["posts"]) == sorted(original, reverse=True)[:10]
    assert page1["next_before"] == page1["posts"][-1]["id"]

    new = [(await world.post(authors[i % 4], f"new {i}"))["id"] for i in range(5)]

    page2 = await world.feed(world.member, limit=10, before=page1["next_before"])
    assert page2["pinned"] == [] and page2["next_before"] == page2["posts"][-1]["id"]
    page3 = await world.feed(world.member, limit=10, before=page2["next_before"])
    assert page3["next_before"] is None

    seen = ids(page1["posts"]) + ids(page2["posts"]) + ids(page3["posts"])
    assert len(seen) == 25 == len(set(seen))
    assert sorted(seen) == original  # every original post exactly once...
    assert all(a > b for a, b in itertools.pairwise(seen))  # ...in strictly decreasing id order
    assert not set(new) & set(seen)

    fresh = await world.feed(world.member, limit=10)
    assert ids(fresh["posts"]) == sorted(new, reverse=True) + sorted(original, reverse=True)[:5]

    # Paging the whole 30 in pages of 5: exactly six pages, the last says there is no more.
    collected: list[int] = []
    before: int | None = None
    for n in range(1, 10):
        query: dict[str, Any] = {"limit": 5} | ({"before": before} if before else {})
        page = await world.feed(world.other, **query)
        assert len(page["posts"]) == 5, (n, page)
        collected += ids(page["posts"])
        before = page["next_before"]
        if before is None:
            break
    assert n == 6
    assert collected == sorted(original + new, reverse=True)


async def test_feed_counts_cost_the_same_queries_whatever_the_page_size(
    world: World, client: TestClient[web.Request, web.Application]
) -> None:
    authors = (world.member, world.other, world.teacher, world.admin)
    posts = [await world.post(authors[i % 4], f"post {i}") for i in range(21)]
    for i, post in enumerate(posts):
        await world.react(post["id"], authors[(i + 1) % 4], KINDS[i % 6])
        await world.react(post["id"], world.member, "like")
        await world.comment(post["id"], authors[(i + 2) % 4], f"comment {i}")
    await expect(world.api, 200, "PUT", f"{world.post_path(posts[0]['id'])}/pinned", world.owner, {"pinned": True})

    engine = client.app[keys.ENGINE].sync_engine

    async def statements(who: Person | None, limit: int) -> tuple[list[str], dict[str, Any]]:
        path = f"{world.posts}?limit={limit}"
        await expect(world.api, 200, "GET", path, who)  # warm the pool: connecting runs statements of its own
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            seen.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            body = await expect(world.api, 200, "GET", path, who)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return seen, body

    for viewer in (world.member, None):
        small, small_page = await statements(viewer, 3)
        large, large_page = await statements(viewer, 20)
        assert len(small_page["posts"]) == 3 and len(large_page["posts"]) == 20
        assert ids(small_page["pinned"]) == ids(large_page["pinned"]) == [posts[0]["id"]]
        for post in small_page["posts"] + large_page["posts"] + large_page["pinned"]:
            assert post["comment_count"] == 1 and sum(post["reactions"].values()) >= 1, post
            if viewer is not None:
                assert "like" in post["my_reactions"], post
        assert any("reactions" in s for s in small), small  # the listener sees the app's queries
        assert len(small) == len(large), (viewer, small, large)


# ---------------------------------------------------------------------------------------------------------------
# Bad input: each a 4xx JSON error that changes nothing


async def test_unknown_or_malformed_circle_ids_are_404(world: World) -> None:
    post = await world.post(world.member)
    before = await world.feed(world.owner)
    for circle in (NO_SUCH_CIRCLE, "short", world.circle + "x", "abc_defghijk", world.circle[:-1] + "-"):
        base = f"/api/circles/{circle}/posts"
        for method, path, json in [
            ("GET", base, None),
            ("POST", base, {"body": "lost"}),
            ("GET", f"{base}/{post['id']}", None),
            ("PATCH", f"{base}/{post['id']}", {"body": "lost"}),
            ("DELETE", f"{base}/{post['id']}", None),
            ("PUT", f"{base}/{post['id']}/reactions/like", None),
            ("POST", f"{base}/{post['id']}/comments", {"body": "lost"}),
        ]:
            assert_error(await world.api.call(method, path, world.member, json), 404)
    # A post id that belongs to another circle is not found through this one.
    other_circle = await make_circle(world.api, world.member)
    elsewhere = f"/api/circles/{other_circle}/posts/{post['id']}"
    assert_error(await world.api.call("GET", elsewhere, world.member), 404)
    assert_error(await world.api.call("DELETE", elsewhere, world.member), 404)
    assert_error(await world.api.call("PUT", f"{elsewhere}/reactions/like", world.member), 404)
    assert await world.feed(world.owner) == before


async def test_badly_typed_or_empty_or_oversize_posts_are_refused(world: World) -> None:
    section = await world.add_section("Real")
    foreign_circle = await make_circle(world.api, world.owner)
    foreign = await expect(world.api, 201, "POST", f"/api/circles/{foreign_circle}/sections", world.owner,
                           {"name": "Elsewhere"})
    post = await world.post(world.member, "keep me", title="Keep", section_id=section["id"])
    before = await world.feed(world.owner)

    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"body": 123}, "body"),
        ({"body": "x", "section_id": "1"}, "section_id"),
        ({"body": "x", "section_id": 1.5}, "section_id"),
        ({"body": "x", "title": ["a", "list"]}, "title"),
        ({"body": "x", "title": ""}, "title"),
        ({"body": "x", "title": "t" * 201}, "title"),
        ({"body": ""}, "body"),
        ({"body": "   \n\t  "}, "body"),
        ({"body": "x" * 20_001}, "body"),
        ({"title": "no body"}, "body"),
        ({"body": None}, "body"),
        ({"body": "x", "pinned": True}, "pinned"),  # unknown field
        ({"body": "x", "section_id": 0}, "section_id"),
    ]
    for payload, field in cases:
        reply = await world.api.call("POST", world.posts, world.member, payload)
        assert_error(reply, 422, "invalid_input")
        problems = {d["field"] for d in reply.body["error"]["details"]}
        assert field in problems, (payload, reply.body)
    for section_id in (foreign["id"], 999_999):
        reply = await world.api.call("POST", world.posts, world.member, {"body": "x", "section_id": section_id})
        assert_error(reply, 422, "unknown_section")
        reply = await world.api.call("PATCH", world.post_path(post["id"]), world.member, {"section_id": section_id})
        assert_error(reply, 422, "unknown_section")
    for payload in ({"body": ""}, {"body": 5}, {"title": ""}, {"body": "x" * 20_001}, {"author_id": 1}):
        assert_error(await world.api.call("PATCH", world.post_path(post["id"]), world.member, payload), 422)
    assert await world.feed(world.owner) == before

    # The boundary itself is allowed.
    longest = await world.post(world.member, "y" * 20_000)
    assert len(longest["body"]) == 20_000


async def test_malformed_json_is_a_400_and_changes_nothing(world: World) -> None:
    post = await world.post(world.member)
    before = await world.feed(world.owner)
    headers = {"Content-Type": "application/json"}
    for data in (b'{"body": "unterminated', b"not json", b'["body"]', b'"body"', b""):
        for method, path in (("POST", world.posts), ("PATCH", world.post_path(post["id"])),
                             ("POST", f"{world.post_path(post['id'])}/comments")):
            reply = await world.api.call(method, path, world.member, data=data, headers=headers)
            assert_error(reply, 400, "malformed_json")
    assert await world.feed(world.owner) == before
    assert await world.comments(post["id"]) == []


async def test_bad_feed_queries_are_422(world: World) -> None:
    await world.post(world.member)
    for query in ("color=red", "limit=0", "limit=1000", "limit=51", "limit=ten", "limit=-1", "before=0",
                  "before=abc", "section_id=x", "limit=10&offset=5"):
        reply = await world.api.call("GET", f"{world.posts}?{query}", world.member)
        assert_error(reply, 422, "invalid_input")
    reply = await world.api.call("GET", f"{world.post_path(1)}/comments?sort=new", world.member)
    assert_error(reply, 422, "invalid_input")
    assert len((await world.feed())["posts"]) == 1


async def test_a_sixth_section_is_refused(world: World) -> None:
    made = [await world.add_section(f"Section {i}") for i in range(5)]
    assert [s["position"] for s in made] == [0, 1, 2, 3, 4]
    reply = await world.api.call("POST", f"/api/circles/{world.circle}/sections", world.owner, {"name": "Sixth"})
    assert_error(reply, 409, "section_limit")
    assert await world.sections() == made


async def test_section_reorder_must_list_every_section_once(world: World) -> None:
    made = [await world.add_section(name) for name in ("A", "B", "C")]
    other_circle = await make_circle(world.api, world.owner)
    foreign = await expect(world.api, 201, "POST", f"/api/circles/{other_circle}/sections", world.owner,
                           {"name": "Foreign"})
    a, b, c = ids(made)
    order = f"/api/circles/{world.circle}/sections/order"
    for wrong in ([a, b], [a, b, c, c], [a, b, foreign["id"]], [a, b, c, foreign["id"]], []):
        assert_error(await world.api.call("PUT", order, world.owner, {"section_ids": wrong}), 409, "section_order")
    assert_error(await world.api.call("PUT", order, world.owner, {"section_ids": [str(a), b, c]}), 422)
    assert_error(await world.api.call("PUT", order, world.member, {"section_ids": [c, b, a]}), 403)
    assert await world.sections() == made


async def test_duplicate_join_is_409_and_keeps_the_role(world: World) -> None:
    roles = await world.roles()
    for who in (world.member, world.admin, world.teacher, world.owner):
        assert_error(await world.api.call("POST", f"/api/circles/{world.circle}/join", who), 409, "already_member")
    assert await world.roles() == roles
    assert roles[world.admin.id] == "admin" and roles[world.owner.id] == "owner"


async def test_reviewing_a_reviewed_application_is_409(api: Api) -> None:
    owner, accepted, refused = await api.register("Owner"), await api.register("Accepted"), await api.register("No")
    circle = await make_circle(api, owner, join_policy="application")
    base = f"/api/circles/{circle}"
    form = {"questions": [{"id": "why", "label": "Why join?", "kind": "text"}]}
    await expect(api, 200, "PUT", f"{base}/application-form", owner, form)
    first = await expect(api, 201, "POST", f"{base}/applications", accepted, {"answers": {"why": "to learn"}})
    second = await expect(api, 201, "POST", f"{base}/applications", refused, {"answers": {"why": "because"}})
    approved = await expect(api, 200, "POST", f"{base}/applications/{first['id']}/approve", owner,
                            {"reason": "welcome"})
    rejected = await expect(api, 200, "POST", f"{base}/applications/{second['id']}/reject", owner,
                            {"reason": "not now"})
    assert (approved["status"], rejected["status"]) == ("approved", "rejected")

    async def members() -> Any:
        return await expect(api, 200, "GET", f"{base}/members", owner)

    members_before = await members()
    assert sorted(m["user_id"] for m in members_before["members"]) == sorted([owner.id, accepted.id])
    for application in (first, second):
        for verdict in ("approve", "reject"):
            reply = await api.call("POST", f"{base}/applications/{application['id']}/{verdict}", owner,
                                   {"reason": "changed my mind"})
            assert_error(reply, 409, "already_reviewed")
    assert await members() == members_before
    queue = await expect(api, 200, "GET", f"{base}/applications?status=approved", owner)
    assert [(a["id"], a["status"], a["reason"]) for a in queue["applications"]] == [
        (first["id"], "approved", "welcome")]
    mine = await expect(api, 200, "GET", f"{base}/applications/mine", refused)
    assert [(a["status"], a["reason"]) for a in mine["applications"]] == [("rejected", "not now")]
    assert_error(await api.call("POST", f"{base}/posts", refused, {"body": "let me in"}), 403, "not_a_member")


# ---------------------------------------------------------------------------------------------------------------
# Sections


async def test_sections_create_rename_reorder_delete_and_posts_stay(world: World) -> None:
    base = f"/api/circles/{world.circle}/sections"
    news, homework, chat = [await world.add_section(n) for n in ("News", "Homework", "Chat")]
    assert [(s["name"], s["position"]) for s in await world.sections()] == [("News", 0), ("Homework", 1), ("Chat", 2)]

    renamed = await expect(world.api, 200, "PATCH", f"{base}/{homework['id']}", world.admin, {"name": "Assignments"})
    assert renamed == {**homework, "name": "Assignments"}
    assert_error(await world.api.call("PATCH", f"{base}/{chat['id']}", world.owner, {"name": "news"}), 409,
                 "section_exists")
    assert_error(await world.api.call("PATCH", f"{base}/{chat['id']}", world.teacher, {"name": "Talk"}), 403)
    assert_error(await world.api.call("PATCH", f"{base}/999999", world.owner, {"name": "Ghost"}), 404)
    assert [s["name"] for s in await world.sections()] == ["News", "Assignments", "Chat"]

    reordered = await expect(world.api, 200, "PUT", f"{base}/order", world.owner,
                             {"section_ids": [chat["id"], news["id"], homework["id"]]})
    expected = [(chat["id"], "Chat", 0), (news["id"], "News", 1), (homework["id"], "Assignments", 2)]
    assert [(s["id"], s["name"], s["position"]) for s in reordered["sections"]] == expected
    assert [(s["id"], s["name"], s["position"]) for s in await world.sections()] == expected

    in_homework = [await world.post(world.member, section_id=homework["id"]) for _ in range(2)]
    pinned = await world.post(world.other, section_id=homework["id"])
    await expect(world.api, 200, "PUT", f"{world.post_path(pinned['id'])}/pinned", world.owner, {"pinned": True})
    in_news = await world.post(world.member, section_id=news["id"])
    assert_error(await world.api.call("DELETE", f"{base}/{homework['id']}", world.member), 403)
    assert len(await world.sections()) == 3

    await expect(world.api, 204, "DELETE", f"{base}/{homework['id']}", world.owner)
    assert [s["id"] for s in await world.sections()] == [chat["id"], news["id"]]
    assert_error(await world.api.call("DELETE", f"{base}/{homework['id']}", world.owner), 404)
    for post in [*in_homework, pinned]:
        kept = await world.get(post["id"])
        assert kept["section_id"] is None and kept["body"] == post["body"]
    page = await world.feed()
    assert ids(page["posts"]) == [in_news["id"], *reversed(ids(in_homework))]
    assert [p["section_id"] for p in page["posts"]] == [news["id"], None, None]
    assert ids(page["pinned"]) == [pinned["id"]] and page["pinned"][0]["section_id"] is None
    assert (await world.feed(section_id=homework["id"])) == {"pinned": [], "posts": [], "next_before": None}
    # a post cannot be moved into the deleted section
    reply = await world.api.call("PATCH", world.post_path(in_homework[0]["id"]), world.member,
                                 {"section_id": homework["id"]})
    assert_error(reply, 422, "unknown_section")
    assert (await world.get(in_homework[0]["id"]))["section_id"] is None
