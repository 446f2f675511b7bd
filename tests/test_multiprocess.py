"""Two real ``quanzi serve`` processes behind one PostgreSQL schema and one Redis, chatting in one circle.

Acceptance: clients on each process chat in one circle; every client receives every message once, in sequence
order. The module fixture starts both processes at once (both migrate on start, under the migration lock); the
``chat_run`` fixture then plays the whole conversation once over real sockets and records what each client saw, and
each test below checks one promise against that record. Like every test here it skips on a laptop without the
services and fails under CI (``QUANZI_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio
from redis.asyncio import Redis

from tests import services
from tests.test_cli import QUANZI, REPO_ROOT, cli_env, free_port, http

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

START_TIMEOUT_SECONDS = 30.0  # two processes importing and migrating at once
STOP_TIMEOUT_SECONDS = 15.0
EVENT_TIMEOUT_SECONDS = 10.0  # every wait for a broadcast is bounded by this
SETTLE_SECONDS = 1.5  # after the last expected broadcast, how long to keep listening for duplicates
MESSAGES_PER_CLIENT = 10  # the per-member send burst: all of them go at once without being rate limited
PASSWORD = "a long enough password"


# --- the two processes -----------------------------------------------------------------------------------------


class Process:
    """``quanzi serve`` as a child process on a given port, its output going to files."""

    def __init__(self, name: str, env: dict[str, str], port: int, log_dir: Path) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.stdout_path = log_dir / f"serve-{name}.stdout"
        self.stderr_path = log_dir / f"serve-{name}.stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen([*QUANZI, "serve", "--port", str(port)], env=env,
                                            stdout=out, stderr=err, cwd=REPO_ROOT)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def output(self) -> str:
        return (f"--- process {self.name} (port {self.port}) stdout:\n{self.stdout_path.read_text()}\n"
                f"--- process {self.name} stderr:\n{self.stderr()}")

    def wait_until_ready(self) -> str | None:
        """None once /healthz and /readyz answer 200, else why not."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"process {self.name} exited early with {self.process.returncode}\n{self.output()}"
            try:
                health, _ = http("GET", self.base + "/healthz")
                ready, body = http("GET", self.base + "/readyz")
                if health == 200 and ready == 200:
                    if body != {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}:
                        return f"process {self.name} is ready without Redis: {body!r}"
                    return None
                last = (health, ready, body)
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.1)
        return f"process {self.name} not ready after {START_TIMEOUT_SECONDS}s (last: {last!r})\n{self.output()}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


@dataclass
class Cluster:
    a: Process
    b: Process
    schema: str
    prefix: str
    started_in: float

    @property
    def processes(self) -> tuple[Process, Process]:
        return self.a, self.b


def two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


async def _pg(sql: str) -> None:
    connection = await asyncio.wait_for(asyncpg.connect(services.asyncpg_dsn()), 10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _delete_redis_keys(prefix: str) -> int:
    redis = Redis.from_url(services.REDIS_URL)
    try:
        doomed = [key async for key in redis.scan_iter(match=f"{prefix}*", count=500)]
        if doomed:
            await redis.delete(*doomed)
        return len(doomed)
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two processes on one fresh schema, one Redis prefix and one secret; stopped with Ctrl-C, then cleaned up."""
    services.require_postgres()
    services.require_redis()
    schema = services.unique_name("quanzi_mp")
    prefix = f"{services.unique_name('quanzi_mp')}:"
    log_dir = tmp_path_factory.mktemp("multiprocess")
    env = cli_env(
        log_dir / "data",
        QUANZI_DATABASE_URL=services.POSTGRES_URL,
        QUANZI_DATABASE_SCHEMA=schema,
        QUANZI_REDIS_URL=services.REDIS_URL,
        QUANZI_REDIS_PREFIX=prefix,
        QUANZI_SECRET_KEY=secrets.token_urlsafe(48),  # shared: a token either process signs, the other accepts
        QUANZI_LOGIN_ATTEMPTS_PER_ACCOUNT="1000",
        QUANZI_LOGIN_ATTEMPTS_PER_IP="10000",
    )
    services.run_blocking(_pg(f'CREATE SCHEMA "{schema}"'))
    processes: list[Process] = []
    try:
        port_a, port_b = two_free_ports()
        began = time.monotonic()
        # Started together: both run the migrations at once, which the migration lock must serialise.
        # Each is also reachable alone at its own address, where a class's media is carried (QUANZI_NODE_URL).
        # Without a load balancer in front the two are two origins: a page served by one opens the class's media
        # connection on the other, which must accept it (behind docker/nginx.conf both are one origin).
        origins = f"http://127.0.0.1:{port_a},http://127.0.0.1:{port_b}"
        for name, port in (("A", port_a), ("B", port_b)):
            node = {"QUANZI_NODE_URL": f"http://127.0.0.1:{port}", "QUANZI_ALLOWED_ORIGINS": origins}
            processes.append(Process(name, {**env, **node}, port, log_dir))
        with ThreadPoolExecutor(max_workers=2) as pool:
            problems = [p for p in pool.map(Process.wait_until_ready, processes) if p]
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)
        a, b = processes
        yield Cluster(a, b, schema, prefix, time.monotonic() - began)

        # Ctrl-C to both at once; each must drain and exit 0 with nothing alarming on stderr.
        for process in processes:
            process.process.send_signal(signal.SIGINT)
        failures = []
        for process in processes:
            try:
                code = process.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                failures.append(f"process {process.name} still running {STOP_TIMEOUT_SECONDS}s after SIGINT")
                continue
            if code != 0:
                failures.append(f"process {process.name} exited with {code}\n{process.output()}")
            elif "Traceback" in process.stderr():
                failures.append(f"process {process.name} printed a traceback\n{process.output()}")
        assert not failures, "\n\n".join(failures)
    finally:
        for process in processes:
            process.kill()
        services.run_blocking(_pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        services.run_blocking(_delete_redis_keys(prefix))


# --- the conversation -------------------------------------------------------------------------------------------


class Api:
    """HTTP calls to one process, with a bearer token; no cookies are kept."""

    def __init__(self, session: aiohttp.ClientSession, process: Process) -> None:
        self.session = session
        self.process = process

    async def call(self, method: str, path: str, token: str | None = None, json: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.process.base + path, json=json, headers=headers) as response:
            body = await response.json(content_type=None) if await response.read() else None
            return response.status, body

    async def expect(self, status: int, method: str, path: str, token: str | None = None, json: Any = None) -> Any:
        got, body = await self.call(method, path, token, json)
        assert got == status, f"{method} {path} on {self.process.name}: {got} {body!r}"
        return body


@dataclass
class Person:
    name: str
    email: str
    user_id: int = 0
    token: str = ""  # a bearer session token


@dataclass
class Reader:
    """One socket connection and everything it was told, in the order it was told."""

    person: Person
    process: Process
    sio: socketio.AsyncClient
    posted: list[dict[str, Any]] = field(default_factory=list)
    posted_at: list[float] = field(default_factory=list)
    presence: list[dict[str, Any]] = field(default_factory=list)
    join_ack: dict[str, Any] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # client_id -> ack

    @property
    def label(self) -> str:
        return f"{self.person.name}@{self.process.name}"

    def posted_seqs(self) -> list[int]:
        return [int(m["seq"]) for m in self.posted]

    def own_seqs(self) -> set[int]:
        return {int(ack["seq"]) for ack in self.sent.values() if ack.get("ok")}

    def presence_of(self, user_id: int, online: bool) -> list[dict[str, Any]]:
        return [e for e in self.presence if e.get("user_id") == user_id and e.get("online") is online]


@dataclass
class ChatRun:
    circle_id: str
    people: dict[str, Person]
    readers: list[Reader]
    cross_checks: dict[str, str]  # what was tried across processes -> "ok" or what happened
    seq_origin: dict[int, str]  # seq -> the label of the reader whose send committed it
    history: dict[str, list[dict[str, Any]]]  # process name -> messages, newest first
    presence_left: dict[bytes, bytes]  # the circle's presence hash in Redis after everyone disconnected
    timings: dict[str, float]

    def all_seqs(self) -> list[int]:
        return sorted(self.seq_origin)


async def until(predicate: Callable[[], bool | Awaitable[bool]], within: float = EVENT_TIMEOUT_SECONDS) -> bool:
    """Poll ``predicate`` until it holds (True) or ``within`` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        held = predicate()
        if held if isinstance(held, bool) else await held:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)


async def socket_token(api: Api, person: Person) -> str:
    body = await api.expect(201, "POST", "/api/socket-token", person.token)
    return str(body["token"])


async def connect(process: Process, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    async with asyncio.timeout(10):
        await sio.connect(process.base, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    return sio


def listen(reader: Reader, started: list[float]) -> None:
    # Plain functions: the client runs each in its own task, started in arrival order, and these never yield, so
    # the lists record the order in which the server's frames arrived.
    def on_posted(data: dict[str, Any]) -> None:
        reader.posted.append(data)
        reader.posted_at.append(time.monotonic() - started[0])

    def on_presence(data: dict[str, Any]) -> None:
        reader.presence.append(data)

    reader.sio.on("message_posted", on_posted)
    reader.sio.on("presence_changed", on_presence)


async def play(cluster: Cluster) -> ChatRun:
    a, b = cluster.a, cluster.b
    timings: dict[str, float] = {"servers_started": cluster.started_in}
    cross: dict[str, str] = {}
    run_id = secrets.token_hex(3)
    people = {name: Person(name, f"{name}-{run_id}@example.org") for name in ("owner", "m1", "m2", "m3")}
    readers: list[Reader] = []
    began = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout) as session:
        api = {"A": Api(session, a), "B": Api(session, b)}

        # Everyone registers on A; owner and m1 sign in on A, m2 and m3 on B: both share the database.
        await asyncio.gather(*(api["A"].expect(201, "POST", "/api/auth/register", json={
            "email": p.email, "password": PASSWORD, "display_name": p.name.title()}) for p in people.values()))
        sign_in_on = {"owner": "A", "m1": "A", "m2": "B", "m3": "B"}

        async def sign_in(person: Person) -> None:
            body = await api[sign_in_on[person.name]].expect(201, "POST", "/api/auth/token", json={
                "email": person.email, "password": PASSWORD})
            person.user_id, person.token = int(body["user"]["id"]), str(body["token"])

        await asyncio.gather(*(sign_in(p) for p in people.values()))
        owner, m1, m2, m3 = people.values()

        # A bearer session made on B is good on A, and the other way round.
        me = await api["A"].expect(200, "GET", "/api/me", m2.token)
        cross["bearer from B used on A"] = "ok" if me["user"]["id"] == m2.user_id else f"wrong user: {me!r}"
        me = await api["B"].expect(200, "GET", "/api/me", owner.token)
        cross["bearer from A used on B"] = "ok" if me["user"]["id"] == owner.user_id else f"wrong user: {me!r}"

        circle = await api["A"].expect(201, "POST", "/api/circles", owner.token, {
            "name": "Two processes", "visibility": "public", "join_policy": "open"})
        circle_id = str(circle["id"])
        join_on = {"m1": "B", "m2": "A", "m3": "B"}
        await asyncio.gather(*(api[join_on[p.name]].expect(201, "POST", f"/api/circles/{circle_id}/join", p.token)
                               for p in (m1, m2, m3)))
        timings["accounts_and_circle"] = time.monotonic() - began

        # A socket token signed by A opens a socket on B (one secret); this probe joins nothing.
        try:
            probe = await connect(b, await socket_token(api["A"], m2))
        except Exception as exc:
            cross["socket token from A used on B"] = f"refused: {exc!r}"
        else:
            cross["socket token from A used on B"] = "ok" if probe.connected else "not connected"
            await probe.disconnect()

        # Two readers on each process, each with a token from the process it connects to.
        placement = [(owner, a), (m1, a), (m2, b), (m3, b)]
        tokens = await asyncio.gather(*(socket_token(api[process.name], person) for person, process in placement))
        send_started = [0.0]
        try:
            for (person, process), token in zip(placement, tokens, strict=True):
                reader = Reader(person, process, socketio.AsyncClient(reconnection=False))
                readers.append(reader)
                listen(reader, send_started)
                async with asyncio.timeout(10):
                    await reader.sio.connect(process.base, auth={"token": token}, transports=["websocket"],
                                             wait_timeout=5)
            by_name = {r.person.name: r for r in readers}

            # B's readers join first, then A's, one by one: B must hear of A's arrivals through Redis.
            for name in ("m2", "m3", "owner", "m1"):
                reader = by_name[name]
                reader.join_ack = await reader.sio.call("join_circle", {"circle_id": circle_id}, timeout=10)
                assert reader.join_ack.get("ok") is True, f"{reader.label} join_circle: {reader.join_ack!r}"
            await until(lambda: all(by_name[r].presence_of(people[u].user_id, True)
                                    for r in ("m2", "m3") for u in ("owner", "m1")))

            # Everyone sends their whole burst at once: 40 sends in flight across two processes.
            async def send(reader: Reader, i: int) -> None:
                client_id = f"mp-{reader.person.name}-{i:02d}-{secrets.token_hex(4)}"
                ack = await reader.sio.call("send_message", {
                    "circle_id": circle_id, "client_id": client_id,
                    "body": f"{reader.person.name} says {i}"}, timeout=10)
                reader.sent[client_id] = ack

            send_started[0] = time.monotonic()
            await asyncio.gather(*(send(r, i) for r in readers for i in range(MESSAGES_PER_CLIENT)))
            timings["sends_acked"] = time.monotonic() - send_started[0]
            total = MESSAGES_PER_CLIENT * len(readers)
            await until(lambda: all(len(set(r.posted_seqs())) >= total for r in readers))
            timings["all_broadcasts_arrived"] = time.monotonic() - send_started[0]
            await asyncio.sleep(SETTLE_SECONDS)  # a duplicate would arrive now

            seq_origin = {int(ack["seq"]): r.label for r in readers for ack in r.sent.values() if ack.get("ok")}

            # The history, read over HTTP from each process.
            history = {}
            for name, person in (("A", owner), ("B", m2)):
                body = await api[name].expect(200, "GET", f"/api/circles/{circle_id}/messages?limit=100",
                                              person.token)
                history[name] = body["messages"]

            # m1 leaves A: the readers on B see it go.
            await by_name["m1"].sio.disconnect()
            await until(lambda: all(by_name[r].presence_of(m1.user_id, False) for r in ("m2", "m3")), within=5)
        finally:
            for reader in readers:
                if reader.sio.connected:
                    await reader.sio.disconnect()

        # Everyone gone: the circle's shared presence counts drain to nothing.
        redis = Redis.from_url(services.REDIS_URL)
        try:
            key = f"{cluster.prefix}presence:{circle_id}"
            left: dict[bytes, bytes] = {}

            async def drained() -> bool:
                nonlocal left
                left = await redis.hgetall(key)
                return not left

            await until(drained, within=5)
        finally:
            await redis.aclose()
    timings["conversation"] = time.monotonic() - began
    return ChatRun(circle_id, people, readers, cross, seq_origin, history, left, timings)


@pytest.fixture(scope="module")
def chat_run(cluster: Cluster) -> ChatRun:
    run = services.run_blocking(asyncio.wait_for(play(cluster), 45))
    print("timings: " + ", ".join(f"{k}={v:.2f}s" for k, v in run.timings.items()))  # shown with -s or on failure
    return run


# --- what must hold ---------------------------------------------------------------------------------------------


def test_sessions_and_socket_tokens_work_on_either_process(chat_run: ChatRun) -> None:
    assert chat_run.cross_checks == {
        "bearer from B used on A": "ok",
        "bearer from A used on B": "ok",
        "socket token from A used on B": "ok",
    }


def test_sends_are_acknowledged_and_numbered_1_to_40_across_processes(chat_run: ChatRun) -> None:
    total = MESSAGES_PER_CLIENT * len(chat_run.readers)
    for reader in chat_run.readers:
        assert len(reader.sent) == MESSAGES_PER_CLIENT
        for client_id, ack in reader.sent.items():
            assert ack.get("ok") is True, f"{reader.label} {client_id}: {ack!r}"
            assert ack["duplicate"] is False
            assert ack["message"]["client_id"] == client_id and ack["message"]["seq"] == ack["seq"]
            assert ack["message"]["author"]["user_id"] == reader.person.user_id
    assert chat_run.all_seqs() == list(range(1, total + 1))


def test_every_client_receives_every_message_exactly_once(chat_run: ChatRun) -> None:
    total = MESSAGES_PER_CLIENT * len(chat_run.readers)
    by_seq = {int(ack["seq"]): ack["message"] for r in chat_run.readers for ack in r.sent.values() if ack.get("ok")}
    problems = []
    for reader in chat_run.readers:
        counts = Counter(reader.posted_seqs())
        own = reader.own_seqs()
        others = set(range(1, total + 1)) - own
        missing = sorted(s for s in others if counts[s] == 0)
        repeated = sorted(s for s, n in counts.items() if n > 1)
        unknown = sorted(set(counts) - set(range(1, total + 1)))
        if missing or repeated or unknown:
            problems.append(f"{reader.label}: others' seqs missing {missing}, repeated {repeated}, unknown {unknown}")
        known = set(counts) | own
        if known != set(range(1, total + 1)):
            problems.append(f"{reader.label}: knows {sorted(known)}, not 1..{total}")
        # The broadcast goes to the whole circle room, the sender's connection included (docs/protocol.md).
        if sorted(own - set(counts)):
            problems.append(f"{reader.label}: no message_posted for its own seqs {sorted(own - set(counts))}")
        for message in reader.posted:
            sent = by_seq.get(int(message["seq"]))
            if sent is None or (message["client_id"], message["body"]) != (sent["client_id"], sent["body"]):
                problems.append(f"{reader.label}: seq {message['seq']} arrived as {message!r}, sent as {sent!r}")
    assert not problems, "\n".join(problems)


def _inversions(seqs: list[int]) -> list[tuple[int, int, int]]:
    """(position, previous seq, this seq) wherever a seq is not above the one before it."""
    return [(i + 1, before, after) for i, (before, after) in enumerate(itertools.pairwise(seqs)) if after <= before]


def test_every_client_receives_messages_in_sequence_order(chat_run: ChatRun) -> None:
    problems = []
    for reader in chat_run.readers:
        seqs = reader.posted_seqs()
        bad = _inversions(seqs)
        if bad:
            detail = ", ".join(
                f"#{pos}: {before} (sent via {chat_run.seq_origin.get(before)}) then {after} "
                f"(sent via {chat_run.seq_origin.get(after)}, at +{reader.posted_at[pos]:.3f}s)"
                for pos, before, after in bad
            )
            problems.append(f"{reader.label} received {seqs}\n    out of order at {detail}")
    assert not problems, "message_posted not in sequence order:\n" + "\n".join(problems)


def test_presence_crosses_processes(chat_run: ChatRun) -> None:
    people = chat_run.people
    by_name = {r.person.name: r for r in chat_run.readers}
    for reader_name in ("m2", "m3"):  # on B
        reader = by_name[reader_name]
        for arrived in ("owner", "m1"):  # joined on A
            assert reader.presence_of(people[arrived].user_id, True), (
                f"{reader.label} never heard {arrived} (on A) come online: {reader.presence!r}")
        assert reader.presence_of(people["m1"].user_id, False), (
            f"{reader.label} never heard m1 (on A) go offline: {reader.presence!r}")
    # The last to join (m1, on A) is told everyone is online, the readers on B included.
    assert by_name["m1"].join_ack["online"] == sorted(p.user_id for p in people.values())
    # Nobody hears of their own arrival.
    for reader in chat_run.readers:
        assert not reader.presence_of(reader.person.user_id, True), reader.presence
    assert chat_run.presence_left == {}, "presence counts left in Redis after every connection closed"


def test_history_is_the_same_on_both_processes(chat_run: ChatRun) -> None:
    total = MESSAGES_PER_CLIENT * len(chat_run.readers)
    from_a, from_b = chat_run.history["A"], chat_run.history["B"]
    assert [m["seq"] for m in from_a] == list(range(total, 0, -1))
    assert from_a == from_b
    sent = {ack["message"]["client_id"]: ack["message"] for r in chat_run.readers for ack in r.sent.values()}
    for message in from_a:
        assert sent[message["client_id"]] == message


def test_servers_logged_no_errors_while_serving(cluster: Cluster, chat_run: ChatRun) -> None:
    for process in cluster.processes:
        assert process.process.poll() is None, process.output()
        stderr = process.stderr()
        assert "Traceback" not in stderr and " ERROR " not in stderr, process.output()


def test_migrations_ran_once_though_both_processes_started_together(cluster: Cluster) -> None:
    ran = [p.name for p in cluster.processes if "Running upgrade  -> 0001" in p.stderr()]
    assert len(ran) == 1, "\n".join(p.output() for p in cluster.processes)
