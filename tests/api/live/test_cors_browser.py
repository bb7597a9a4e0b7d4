"""CORS in a real Chromium: a page served by another origin (a second small aiohttp app on
another 127.0.0.1 port) calls the API with fetch (bearer token, preflighted), listens
with EventSource (``?access_token=``) and a WebSocket; the same page from an origin
not listed is refused by the browser on all three."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from herald.api.server import Serving, serve
from herald.streams.settings import Settings
from tests.api.live.conftest import WAIT_MS, LiveClient, running_live

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("projector")]

PAGE = """<!doctype html><meta charset="utf-8"><title>another app</title>
<script type="module">
const q = new URLSearchParams(location.search);
const api = q.get("api"), token = q.get("token");
const out = window.results = {sse: [], ws: [], errors: []};
try {
  const auth = {Authorization: `Bearer ${token}`};
  const r = await fetch(`${api}/v1/users/me/inbox?limit=5`, {headers: auth});
  const body = await r.json();
  out.fetch = {status: r.status, titles: body.items.map((i) => i.title),
               requestId: r.headers.get("X-Request-Id")};
  const p = await fetch(`${api}/v1/users/me/inbox/read_all`, {method: "POST", headers: auth});
  out.post = {status: p.status, unread: (await p.json()).unread_count};
} catch (e) { out.errors.push(`fetch: ${e.message}`); }
const es = new EventSource(`${api}/v1/users/me/events?access_token=${encodeURIComponent(token)}`);
for (const type of ["ready", "item.created"]) {
  es.addEventListener(type, (e) => out.sse.push([type, JSON.parse(e.data).position]));
}
es.onerror = () => { out.errors.push("sse"); es.close(); };
const ws = new WebSocket(`${api.replace("http", "ws")}/v1/users/me/ws?access_token=${token}`);
ws.onmessage = (e) => {
  const d = JSON.parse(e.data);
  if (d.type !== "heartbeat") out.ws.push([d.type, d.position]);
};
ws.onerror = () => out.errors.push("ws");
out.started = true;
</script>"""


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[Serving]:
    """Another origin: a tiny app serving the page on its own port."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    serving = await serve(app, "127.0.0.1", 0)
    try:
        yield serving
    finally:
        await serving.stop()


async def _results(page: Any, done: str) -> dict[str, Any]:
    await page.wait_for_function(done, timeout=WAIT_MS)
    return dict(await page.evaluate("window.results"))


async def test_a_page_on_a_listed_origin_uses_fetch_eventsource_and_websocket(
        browser: Any, live_settings: Settings) -> None:
    async with page_server() as listed, page_server() as unlisted, \
            running_live(live_settings.replace(cors_origins=(listed.url,))) as live:
        await live.publish("ivy", "before the page")
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{listed.url}/?api={live.url}&token={live.token('ivy')}")
        got = await _results(page, "window.results && window.results.post && "
                                   "window.results.sse.length && window.results.ws.length")
        assert got["fetch"]["status"] == 200 and got["fetch"]["titles"] == ["before the page"]
        assert got["fetch"]["requestId"]  # an exposed header
        assert got["post"] == {"status": 200, "unread": 0}
        assert got["sse"][0][0] == "ready" and got["ws"][0][0] == "ready"
        published = await live.publish("ivy", "while the page is open")
        position = published.body["position"]
        got = await _results(page, "window.results.sse.length > 1 && window.results.ws.length > 1")
        assert got["sse"][1] == ["item.created", position]
        assert got["ws"][1] == ["item.created", position]
        assert got["errors"] == [] and errors == []

        other = await browser.new_page()
        await other.goto(f"{unlisted.url}/?api={live.url}&token={live.token('ivy')}")
        refused = await _results(other, "window.results && window.results.started && "
                                        "window.results.errors.length >= 3")
        assert refused.get("fetch") is None and refused.get("post") is None
        assert refused["errors"][0].startswith("fetch: ")
        assert set(refused["errors"][1:]) == {"sse", "ws"}
        assert refused["sse"] == [] and refused["ws"] == []


async def test_nothing_cross_origin_without_the_setting(browser: Any, live: LiveClient
                                                        ) -> None:
    async with page_server() as elsewhere:
        page = await browser.new_page()
        await page.goto(f"{elsewhere.url}/?api={live.url}&token={live.token('jo')}")
        got = await _results(page, "window.results && window.results.started && "
                                   "window.results.errors.length >= 2")
        assert got["errors"][0].startswith("fetch: ") and "sse" in got["errors"]
