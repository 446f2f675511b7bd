"""The ``quanzi`` command run as a real process: help, migrate, the admin verbs, and ``serve`` on a real port.

Each test gets its own data directory (SQLite) or its own PostgreSQL schema, and cheap argon2 costs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.db.migrate import head_revision
from tests import services

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "a long enough password"
ADMIN_EMAIL = "root@example.org"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 15.0


def _quanzi_command() -> list[str]:
    """The installed console script next to this interpreter, else the module it runs."""
    script = Path(sys.executable).parent / "quanzi"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("quanzi")
    return [found] if found else [sys.executable, "-m", "server.cli"]


QUANZI = _quanzi_command()


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without any QUANZI_* setting, plus a data directory and cheap password hashing.

    PYTHONPATH points at this checkout so the console script runs the code under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANZI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update({
        "QUANZI_DATA_DIR": str(data_dir),
        "QUANZI_PASSWORD_HASH_TIME_COST": "1",
        "QUANZI_PASSWORD_HASH_MEMORY_KIB": "1024",
    })
    env.update(extra)
    return env


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"quanzi {' '.join(self.args)} -> {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"


def quanzi(env: dict[str, str], *args: str, stdin: str = "", timeout: float = 60) -> Run:
    """Run to completion. Standard input is always a pipe (empty unless given), never the terminal."""
    done = subprocess.run([*QUANZI, *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)
    return Run(list(args), done.returncode, done.stdout, done.stderr)


def quanzi_many(env: dict[str, str], *commands: tuple[tuple[str, ...], str]) -> list[Run]:
    """Independent invocations, each ``(args, stdin)``, run at once: each one spends most of its time importing."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda command: quanzi(env, *command[0], stdin=command[1]), commands))


def create_user(env: dict[str, str], email: str, password: str = PASSWORD, *extra: str) -> Run:
    return quanzi(env, "user", "create", "--email", email, "--name", "Root", "--password-stdin", *extra,
                  stdin=password + "\n")


# --- help ---------------------------------------------------------------------------------------------------------

HELP_CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "quanzi": ((), ("serve", "migrate", "user", "institution", "openapi")),
    "serve": (("serve",), ("--host", "--port")),
    "migrate": (("migrate",), ("Alembic migrations",)),
    "user create": (("user", "create"), ("--email", "--name", "--password-stdin", "--site-admin")),
    "institution create": (("institution", "create"), ("--name", "--owner", "EMAIL")),
    "openapi": (("openapi",), ("OpenAPI",)),
}


@pytest.fixture(scope="module")
def help_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every help page, plus ``quanzi`` without a command and ``quanzi openapi``, run at once."""
    data_dir = tmp_path_factory.mktemp("help")
    names = list(HELP_CASES)
    runs = quanzi_many(
        cli_env(data_dir),
        *(((*HELP_CASES[name][0], "--help"), "") for name in names),
        ((), ""),
        (("openapi",), ""),
    )
    results = dict(zip(names, runs, strict=False))
    results["<no command>"], results["<openapi>"] = runs[-2:]
    # None of these touch the database.
    assert not (data_dir / "quanzi.db").exists()
    return results


@pytest.mark.parametrize("name", list(HELP_CASES))
def test_help_exits_zero_and_lists_options(help_runs: dict[str, Run], name: str) -> None:
    run = help_runs[name]
    assert run.returncode == 0, run
    assert run.stdout.startswith("usage: quanzi"), run
    assert "--help" in run.stdout
    for word in HELP_CASES[name][1]:
        assert word in run.stdout, f"{word!r} missing from the help of {name!r}:\n{run.stdout}"


def test_no_command_prints_usage_and_exits_2(help_runs: dict[str, Run]) -> None:
    run = help_runs["<no command>"]
    assert run.returncode == 2, run
    assert "usage: quanzi" in run.stdout


def test_openapi_prints_the_document(help_runs: dict[str, Run]) -> None:
    run = help_runs["<openapi>"]
    assert run.returncode == 0, run
    document = json.loads(run.stdout)
    assert document["openapi"].startswith("3.")
    for path in ("/healthz", "/readyz", "/api/auth/token", "/api/institutions"):
        assert path in document["paths"]


# --- migrate and the admin verbs (SQLite) ----------------------------------------------------------------------


def sqlite_rows(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query, params).fetchall()
    finally:
        connection.close()


def test_migrate_creates_the_database(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    db_path = tmp_path / "quanzi.db"
    assert not db_path.exists()
    run = quanzi(env, "migrate")
    assert run.returncode == 0, run
    head = head_revision()
    assert head is not None
    assert head in run.stdout and "SQLite" in run.stdout
    assert db_path.is_file()
    assert sqlite_rows(db_path, "SELECT version_num FROM alembic_version") == [(head,)]
    tables = {row[0] for row in sqlite_rows(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "auth_sessions", "institutions", "institution_members"} <= tables
    # A persistent secret was generated alongside, readable by the owner only.
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_user_and_institution_commands(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    db_path = tmp_path / "quanzi.db"

    created = create_user(env, ADMIN_EMAIL, PASSWORD, "--site-admin")
    assert created.returncode == 0, created
    assert ADMIN_EMAIL in created.stdout and "site admin" in created.stdout

    inst = quanzi(env, "institution", "create", "--name", "Hangzhou Evening School", "--owner", "ROOT@example.org")
    assert inst.returncode == 0, inst
    assert "Hangzhou Evening School" in inst.stdout

    duplicate, short, unknown_owner, plain = quanzi_many(
        env,
        (("user", "create", "--email", "Root@Example.org", "--name", "Again", "--password-stdin"), PASSWORD + "\n"),
        (("user", "create", "--email", "short@example.org", "--name", "Short", "--password-stdin"), "short\n"),
        (("institution", "create", "--name", "Nobody's School", "--owner", "nobody@example.org"), ""),
        (("user", "create", "--email", "plain@example.org", "--name", "Plain", "--password-stdin"), PASSWORD + "\n"),
    )

    assert duplicate.returncode != 0, duplicate
    assert "email_taken" in duplicate.stderr or "already exists" in duplicate.stderr, duplicate
    assert "Traceback" not in duplicate.stderr, duplicate

    assert short.returncode != 0, short
    assert "password" in short.stderr, short
    assert "Traceback" not in short.stderr, short

    assert unknown_owner.returncode != 0, unknown_owner
    assert "nobody@example.org" in unknown_owner.stderr, unknown_owner
    assert "Traceback" not in unknown_owner.stderr, unknown_owner

    assert plain.returncode == 0, plain
    assert "plain@example.org" in plain.stdout and "site admin" not in plain.stdout

    # What the commands did, as seen in the database: one site admin and one ordinary user (the refused ones
    # left nothing behind), and one institution that the site admin owns.
    users = sqlite_rows(db_path, "SELECT id, email, is_site_admin FROM users ORDER BY id")
    assert [(email, bool(admin)) for _, email, admin in users] == [(ADMIN_EMAIL, True), ("plain@example.org", False)]
    institutions = sqlite_rows(db_path, "SELECT id, name FROM institutions")
    assert [name for _, name in institutions] == ["Hangzhou Evening School"]
    members = sqlite_rows(db_path, "SELECT institution_id, user_id, role FROM institution_members")
    assert members == [(institutions[0][0], users[0][0], "owner")]


# id: (what the error must name, extra environment, arguments)
BAD_CONFIG: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {
    "port-not-a-number": ("QUANZI_PORT", {"QUANZI_PORT": "abc"}, ("serve",)),
    "database-url": ("QUANZI_DATABASE_URL", {"QUANZI_DATABASE_URL": "mysql://x"}, ("serve",)),
    "redis-url": ("QUANZI_REDIS_URL", {"QUANZI_REDIS_URL": "http://x"}, ("migrate",)),
    # The command-line flag should be held to the same range as QUANZI_PORT.
    "port-flag-out-of-range": ("port", {}, ("serve", "--port", "70000")),
}


@pytest.fixture(scope="module")
def bad_config_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Run, Path]]:
    """All the bad configurations, tried at once, each in a data directory of its own."""
    base = tmp_path_factory.mktemp("bad-config")

    def attempt(case_id: str) -> tuple[Run, Path]:
        _, extra, args = BAD_CONFIG[case_id]
        data_dir = base / case_id
        return quanzi(cli_env(data_dir, **extra), *args, timeout=30), data_dir

    with ThreadPoolExecutor(max_workers=len(BAD_CONFIG)) as pool:
        return dict(zip(BAD_CONFIG, pool.map(attempt, BAD_CONFIG), strict=True))


@pytest.mark.parametrize("case_id", list(BAD_CONFIG))
def test_bad_config_exits_2_naming_the_variable(bad_config_runs: dict[str, tuple[Run, Path]], case_id: str) -> None:
    run, data_dir = bad_config_runs[case_id]
    named = BAD_CONFIG[case_id][0]
    assert "Traceback" not in run.stderr, run
    assert run.returncode == 2, run
    assert named in run.stderr, run
    assert run.stderr.startswith(("quanzi: configuration error:", "usage: quanzi")), run
    # Refused before anything started: no database was created or migrated.
    assert not (data_dir / "quanzi.db").exists(), run


# --- serve ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Straight to the server, whatever *_proxy variables the environment has.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        error.close()
        return error.code, json.loads(raw) if raw else None


class Server:
    """``quanzi serve`` as a child process, its output going to files so it can never block on a full pipe."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / "serve.stdout"
        self.stderr_path = log_dir / "serve.stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen([*QUANZI, "serve", "--port", str(self.port)], env=env,
                                            stdout=out, stderr=err, cwd=REPO_ROOT)

    def output(self) -> str:
        return f"stdout:\n{self.stdout_path.read_text()}\nstderr:\n{self.stderr_path.read_text()}"

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"quanzi serve exited early with {self.process.returncode}\n{self.output()}")
            try:
                health, _ = http("GET", self.base + "/healthz")
                ready, body = http("GET", self.base + "/readyz")
                if health == 200 and ready == 200:
                    return
                last = (health, ready, body)
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.1)
        pytest.fail(f"quanzi serve not ready after {START_TIMEOUT_SECONDS}s (last: {last!r})\n{self.output()}")

    def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


@pytest.fixture
def serve() -> Iterator[list[Server]]:
    """Started servers are always stopped, even when a test fails half-way."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def exercise_server(
    env: dict[str, str], log_dir: Path, started: list[Server], backend: str, stop_with: signal.Signals
) -> None:
    created = create_user(env, ADMIN_EMAIL, PASSWORD, "--site-admin")
    assert created.returncode == 0, created
    server = Server(env, log_dir)
    started.append(server)
    server.wait_until_ready()

    status, body = http("GET", server.base + "/healthz")
    assert (status, body["status"]) == (200, "ok")
    status, body = http("GET", server.base + "/readyz")
    assert status == 200
    assert body == {"status": "ok", "checks": {"database": "ok"}}

    wrong_status, wrong = http("POST", server.base + "/api/auth/token",
                               {"email": ADMIN_EMAIL, "password": "not the password"})
    assert wrong_status == 401 and wrong["error"]["code"] == "wrong_credentials"

    status, signed_in = http("POST", server.base + "/api/auth/token", {"email": ADMIN_EMAIL, "password": PASSWORD})
    assert status == 201, signed_in
    assert signed_in["user"]["email"] == ADMIN_EMAIL
    token = signed_in["token"]

    status, institution = http("POST", server.base + "/api/institutions", {"name": "Over HTTP"}, token)
    assert status == 201, institution
    assert institution["name"] == "Over HTTP" and institution["my_role"] == "owner"
    status, listed = http("GET", server.base + "/api/institutions", token=token)
    assert status == 200
    assert [i["name"] for i in listed["institutions"]] == ["Over HTTP"]

    assert f"{server.base}/" in server.stdout_path.read_text()
    assert backend in server.stdout_path.read_text()

    code = server.stop(stop_with)
    assert code == 0, server.output()
    assert "Traceback" not in server.stderr_path.read_text(), server.output()
    with pytest.raises(OSError):
        http("GET", server.base + "/healthz")


def test_serve_on_sqlite(tmp_path: Path, serve: list[Server]) -> None:
    env = cli_env(tmp_path / "data")
    exercise_server(env, tmp_path, serve, "SQLite", signal.SIGINT)  # Ctrl-C in a terminal
    # The institution made over HTTP is in the SQLite file the CLI created.
    names = sqlite_rows(tmp_path / "data" / "quanzi.db", "SELECT name FROM institutions")
    assert names == [("Over HTTP",)]


@pytest.fixture
def fresh_pg_schema() -> Iterator[str]:
    services.require_postgres()
    schema = services.unique_name("quanzi_cli")

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(services.asyncpg_dsn())
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    services.run_blocking(execute(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        services.run_blocking(execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def test_serve_on_postgres(tmp_path: Path, fresh_pg_schema: str, serve: list[Server]) -> None:
    # fresh_pg_schema comes first so the server is stopped before its schema is dropped.
    env = cli_env(tmp_path / "data", QUANZI_DATABASE_URL=services.POSTGRES_URL,
                  QUANZI_DATABASE_SCHEMA=fresh_pg_schema)
    exercise_server(env, tmp_path, serve, "PostgreSQL", signal.SIGTERM)  # a container or service manager stopping it
    assert not (tmp_path / "data" / "quanzi.db").exists()

    async def names() -> list[str]:
        connection = await asyncpg.connect(services.asyncpg_dsn())
        try:
            rows = await connection.fetch(f'SELECT name FROM "{fresh_pg_schema}".institutions')
            return [row["name"] for row in rows]
        finally:
            await connection.close()

    # Everything went into the schema given, not into public.
    assert services.run_blocking(names()) == ["Over HTTP"]
