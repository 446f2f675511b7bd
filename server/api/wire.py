"""HTTP edges: decoding bodies, encoding responses, and mapping domain errors to HTTP, in exactly one place."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rooms.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from server import keys

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class MalformedBody(InvalidInput):
    code = "malformed_json"
    default_message = "the body is not a JSON object"


# The only table that turns domain errors into HTTP statuses; the closest class in an error's MRO wins.
HTTP_STATUS: dict[type[DomainError], int] = {
    MalformedBody: 400,
    InvalidInput: 422,
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    PayloadTooLarge: 413,
    RateLimited: 429,
    DomainError: 400,
}


def http_status(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400


def error_response(error: DomainError) -> web.Response:
    response = web.json_response({"error": error.payload()}, status=http_status(error))
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def ok(data: Any, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The body as ``model``: 413 past the size limit, 400 if not JSON, 422 naming each field that is wrong."""
    try:  # a declared Content-Length over the limit was refused by error_middleware already
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge() from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, too deeply nested, or a number too long to convert
        raise MalformedBody() from None
    if not isinstance(data, dict):
        raise MalformedBody()
    try:
        # JSON mode: strict about types, yet enum values and timestamps arrive as the strings JSON has for them.
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(details=_field_errors(exc)) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidInput(details=_field_errors(exc)) from None


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or None, "problem": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


MAX_ID = 2**31 - 1  # the widest id a column holds on both backends


def path_int(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])  # the route pattern admits digits only
    if not 1 <= value <= MAX_ID:
        raise NotFound()  # no row can have this id
    return value


def path_circle_id(request: web.Request) -> str:
    return request.match_info["circle_id"]  # the route pattern admits well-formed circle ids only


@asynccontextmanager
async def transaction(request: web.Request) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back whole if anything raises. GET and HEAD
    requests read only, so on SQLite they do not queue behind writers."""
    factory = request.app[keys.DB_READ] if request.method in ("GET", "HEAD") else request.app[keys.DB]
    async with factory() as db, db.begin():
        yield db


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.content_length is not None and request.content_length > request.app[keys.SETTINGS].max_body_bytes:
            raise PayloadTooLarge()
        return await handler(request)
    except DomainError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        body = {"error": {"code": code, "message": exc.reason}}
        return web.json_response(body, status=exc.status, headers={
            k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")
        })
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": {"code": "internal", "message": "internal server error"}}, status=500)
