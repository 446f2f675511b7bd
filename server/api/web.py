"""The browser client, served from ``web_client/`` as plain files: nothing to build at run time."""

from __future__ import annotations

from aiohttp import web

from server import keys
from server.api.routes import Route


async def index(request: web.Request) -> web.FileResponse:
    response = web.FileResponse(request.app[keys.SETTINGS].web_client_dir / "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


async def join_page(request: web.Request) -> web.FileResponse:
    return await index(request)


ROUTES = [
    Route("GET", "/", index, "The web client", "web", auth="public", content_type="text/html"),
    Route("GET", "/join/{token}", join_page, "Where an invite link or its QR code lands: the web client's join page",
          "web", auth="public", content_type="text/html"),
]


def add_static(app: web.Application) -> None:
    app.router.add_static("/static/", app[keys.SETTINGS].web_client_dir, name="static", append_version=False)
    app.on_response_prepare.append(_revalidate_static)


async def _revalidate_static(request: web.Request, response: web.StreamResponse) -> None:
    # The client's modules keep their names across releases: browsers must ask again (cheaply, by ETag and
    # Last-Modified) rather than run a stale module beside a fresh one after an upgrade.
    if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-cache"
