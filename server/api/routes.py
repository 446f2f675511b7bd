"""The route table: each route declares its handler and its shapes once, for aiohttp and for the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["public", "user"]


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
        # Identifiers are integers: anything else is a 404 from the router, before a handler runs.
        return re.sub(r"\{(\w+_id)\}", r"{\1:\\d+}", self.path)


def add_routes(app: web.Application, routes: Sequence[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.aiohttp_path, route.handler)
