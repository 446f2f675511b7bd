"""The HTTP API: thin handlers that decode, call one service, and encode. Access checks live in ``server.policy``."""

from __future__ import annotations

from server.api import accounts, chat, circles, classes, feed, health, institutions, membership, openapi, web
from server.api.routes import Route


def all_routes() -> list[Route]:
    return [*web.ROUTES, *health.ROUTES, *openapi.ROUTES, *accounts.ROUTES, *institutions.ROUTES, *circles.ROUTES,
            *membership.ROUTES, *feed.ROUTES, *chat.ROUTES, *classes.ROUTES]
