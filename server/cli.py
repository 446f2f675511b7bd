"""The ``quanzi`` command: serve, migrate, and a few administrative verbs."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import DomainError, NotFound
from server import policy
from server.api import all_routes
from server.api.openapi import build_document
from server.api.schemas import InstitutionIn, RegisterIn
from server.app import VERSION, create_app
from server.db import migrate as migrations
from server.db import users as users_db
from server.db.engine import make_engine, make_session_factory
from server.security import Passwords
from server.services import accounts, institutions
from server.settings import Settings, SettingsError

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        result: int = args.run(settings, args)
        return result
    except SettingsError as exc:
        print(f"quanzi: configuration error: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"quanzi: {exc.instance_code}: {exc.message}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quanzi", description="Live classes and the circles around them.")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="apply migrations and run the server",
                                description="Apply pending migrations, then serve HTTP and Socket.IO.")
    serve.add_argument("--host", help="listen address (default QUANZI_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="listen port (default QUANZI_PORT or 8080)")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date",
                                  description="Apply pending Alembic migrations and exit.")
    migrate.set_defaults(run=_migrate)

    user = commands.add_parser("user", help="manage accounts").add_subparsers(title="user commands")
    create_user = user.add_parser("create", help="create an account",
                                  description="Create an account. The password is prompted for, or read from "
                                              "standard input with --password-stdin.")
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--name", required=True, help="display name")
    create_user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create_user.add_argument("--site-admin", action="store_true", help="make the account a site admin")
    create_user.set_defaults(run=_user_create)

    inst = commands.add_parser("institution", help="manage institutions").add_subparsers(
        title="institution commands")
    create_inst = inst.add_parser("create", help="create an institution",
                                  description="Create an institution owned by an existing account.")
    create_inst.add_argument("--name", required=True)
    create_inst.add_argument("--owner", required=True, metavar="EMAIL", help="email of the owning account")
    create_inst.set_defaults(run=_institution_create)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document",
                                  description="Print the HTTP API's OpenAPI document as JSON.")
    openapi.set_defaults(run=_openapi)
    return parser


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    settings = replace(settings, host=args.host if args.host is not None else settings.host,
                       port=args.port if args.port is not None else settings.port)
    asyncio.run(_apply_migrations(settings))
    print(f"Quanzi {VERSION} on {settings.public_origin}/ (database: {_describe(settings)})", flush=True)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None,
                access_log=None)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    asyncio.run(_apply_migrations(settings))
    print(f"schema at {migrations.head_revision()} ({_describe(settings)})")
    return 0


async def _apply_migrations(settings: Settings) -> None:
    engine = make_engine(settings.database_url, settings.database_schema)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


def _user_create(settings: Settings, args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    try:
        body = RegisterIn(email=args.email, password=password, display_name=args.name)
    except ValidationError as exc:
        return _invalid(exc)

    async def create(db: AsyncSession) -> int:
        passwords = Passwords(settings.password_hash_time_cost, settings.password_hash_memory_kib)
        user = await accounts.register(db, passwords, email=body.email, password=body.password,
                                       display_name=body.display_name, is_site_admin=args.site_admin)
        return user.id

    user_id = _in_transaction(settings, create)
    print(f"created user {user_id} <{body.email}>{' (site admin)' if args.site_admin else ''}")
    return 0


def _institution_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        body = InstitutionIn(name=args.name)
    except ValidationError as exc:
        return _invalid(exc)

    async def create(db: AsyncSession) -> int:
        owner = await users_db.get_user_by_email(db, args.owner)
        if owner is None:
            raise NotFound(f"no account with email {args.owner}", code="unknown_user")
        # The command line acts with site-admin authority on the owner's behalf.
        actor = policy.Actor(user_id=owner.id, is_site_admin=True)
        view = await institutions.create(db, actor, name=body.name, owner_id=owner.id)
        return view.institution.id

    institution_id = _in_transaction(settings, create)
    print(f"created institution {institution_id} {body.name!r} owned by {args.owner}")
    return 0


def _openapi(_settings: Settings, _args: argparse.Namespace) -> int:
    print(json.dumps(build_document(all_routes(), VERSION), indent=2, sort_keys=True))
    return 0


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        await _apply_migrations(settings)
        engine = make_engine(settings.database_url, settings.database_schema)
        try:
            async with make_session_factory(engine)() as db, db.begin():
                return await work(db)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _invalid(exc: ValidationError) -> int:
    for err in exc.errors(include_url=False):
        print(f"quanzi: {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
    return 2


def _describe(settings: Settings) -> str:
    return "SQLite" if settings.is_sqlite else "PostgreSQL"


if __name__ == "__main__":
    raise SystemExit(main())
