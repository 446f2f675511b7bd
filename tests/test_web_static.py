"""The web client's files as the server serves them: the page, its modules, the vendored Socket.IO client."""

from __future__ import annotations

from tests.helpers import Api


async def test_the_page_and_its_modules_are_served_and_revalidated(api: Api) -> None:
    page = await api.call("GET", "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-cache"
    assert b'type="module"' in page.raw
    join = await api.call("GET", "/join/abcdefghijklmnop")  # where an invite's QR code lands: the same page
    assert join.status == 200 and join.raw == page.raw
    for path in ("/static/app.js", "/static/socket.js", "/static/styles.css"):
        reply = await api.call("GET", path)
        assert reply.status == 200, path
        # Module names stay the same across releases: browsers must revalidate rather than keep a stale one.
        assert reply.headers["Cache-Control"] == "no-cache", path
        assert "ETag" in reply.headers or "Last-Modified" in reply.headers, path
    missing = await api.call("GET", "/static/no-such-module.js")
    assert missing.status == 404
