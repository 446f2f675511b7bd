"""Property: however many members send at once, a circle's messages are numbered exactly 1..N.

Each message is sent through ``server.services.chat.send`` in its own transaction, all of them concurrently, in an
order Hypothesis shuffles, on SQLite and PostgreSQL. The numbers acknowledged to the senders and the numbers stored
must both be exactly 1..N, without duplicates or gaps, and the circle's counter must stop at N.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from server import keys
from server.db.models import ChatMessage, Circle
from server.policy import Actor
from server.services import chat
from server.settings import Settings
from tests.conftest import Database, make_settings
from tests.helpers import Api, Person

Client = TestClient[web.Request, web.Application]
MAX_SENDERS = 6
_circles = itertools.count(1)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path, login_attempts_per_ip=10_000, login_attempts_per_account=10_000)


@pytest.fixture
async def people(api: Api) -> list[Person]:
    """Registered once per backend; every example makes a fresh circle for some of them."""
    return [await api.register(f"Sender {n}") for n in range(MAX_SENDERS)]


async def fresh_circle(api: Api, owner: Person, members: list[Person]) -> str:
    reply = await api.call("POST", "/api/circles", owner,
                           {"name": f"Sequence {next(_circles)}", "join_policy": "open", "chat_history": "all"})
    assert reply.status == 201, reply.body
    circle_id: str = reply.body["id"]
    for member in members:
        joined = await api.call("POST", f"/api/circles/{circle_id}/join", member)
        assert joined.status == 201, joined.body
    return circle_id


@hypothesis_settings(max_examples=15, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.integers(min_value=1, max_value=8), min_size=2, max_size=MAX_SENDERS),
       shuffle=st.randoms(use_true_random=False))
async def test_concurrent_senders_get_gapless_unique_sequence_numbers(
    api: Api, client: Client, people: list[Person], counts: list[int], shuffle: random.Random
) -> None:
    senders = people[: len(counts)]
    circle = await fresh_circle(api, senders[0], senders[1:])
    factory = client.app[keys.DB]

    async def send(person: Person, n: int) -> tuple[int, str, int]:
        client_id = f"seq-{person.id}-{n:03d}"
        async with factory() as db, db.begin():
            sent = await chat.send(db, Actor(user_id=person.id, is_site_admin=False), circle,
                                   client_id=client_id, body=f"{person.name} #{n}", mentions=[])
        assert sent.created
        return person.id, client_id, sent.message.seq

    jobs = [(person, n) for person, count in zip(senders, counts, strict=True) for n in range(count)]
    shuffle.shuffle(jobs)
    acked = await asyncio.gather(*(send(person, n) for person, n in jobs))
    total = sum(counts)

    assert sorted(seq for _, _, seq in acked) == list(range(1, total + 1))
    async with factory() as db:
        stored = (await db.execute(select(ChatMessage.author_id, ChatMessage.client_id, ChatMessage.seq)
                                   .where(ChatMessage.circle_id == circle).order_by(ChatMessage.seq))).all()
        last = (await db.execute(select(Circle.chat_last_seq).where(Circle.id == circle))).scalar_one()
    assert [seq for _, _, seq in stored] == list(range(1, total + 1))
    assert sorted(map(tuple, stored)) == sorted(acked)  # each sender was told the number that was stored
    assert last == total
