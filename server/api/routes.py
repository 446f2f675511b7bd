"""The route table: each route declares its handler and its shapes once, for aiohttp and for the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["public", "optional", "user"]  # optional: anonymous allowed, signed-in callers see more


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # OpenAPI form: /api/institutions/{institution_id}
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "user"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    content_type: str = "application/json"

    @property
    def aiohttp_path(self) -> str:
        # Malformed identifiers are a 404 from the router, before a handler runs.
        return re.sub(r"\{(\w+)\}", lambda m: f"{{{m[1]}:{path_pattern(m[1])}}}", self.path)


# Circle ids are random strings (they are the link to an unlisted circle); invite tokens likewise; other ids count.
PATH_PATTERNS = {"circle_id": "[A-Za-z0-9]{12}", "token": "[A-Za-z0-9_-]{16,64}", "kind": "[a-z]{1,16}"}


def path_pattern(name: str) -> str:
    return PATH_PATTERNS.get(name, "[0-9]+")  # not \d, which admits other scripts' digits


def add_routes(app: web.Application, routes: Sequence[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.aiohttp_path, route.handler)
