"""The browser client, served by the API: ``GET /v1/client.js`` and ``GET /v1/inbox.js``.

Dependency-free ES modules (no build step, so no source map): ``client.js`` wraps
the API for a page — token refresh through a callback the app supplies, inbox paging,
actions, live updates with gapless resume (SSE with ``since``, long-poll fallback) —
and ``inbox.js`` defines the ``<herald-inbox>`` element on top of it, with its words
and look in ``inbox-strings.js`` and ``inbox-style.js`` and its rows in ``inbox-row.js``
(api/pages/; relative imports, so they load from wherever ``inbox.js`` does).
The path carries the API version; the files are read once and served with an ETag
(304 on a matching ``If-None-Match``, ``Cache-Control: no-cache`` so a new release is
picked up at the next revalidation). A page on another origin loads them like any
call: its origin must be in ``HERALD_CORS_ORIGINS`` (module scripts are fetched in CORS
mode).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from herald.api.routes_pages import Asset, asset, serve_asset
from herald.api.routing import Call, Reply, Route
from herald.streams.settings import Settings

MODULES = {"client.js": "the client (HeraldClient, LiveFeed)",
           "inbox.js": "the <herald-inbox> element",
           "inbox-row.js": "one item of the element's list",
           "inbox-strings.js": "the element's words (English, Simplified Chinese)",
           "inbox-style.js": "the element's style sheet and icons"}
JS = "text/javascript"


def routes(settings: Settings) -> list[Route]:
    out = []
    for name, what in MODULES.items():
        module = asset(name, JS)

        def handler(served: Asset) -> Callable[[Call], Awaitable[web.Response]]:
            async def get(call: Call) -> web.Response:
                return serve_asset(call.request, served)

            return get

        stem = name[:-3].replace("-", "_")
        out.append(Route("GET", f"/v1/{name}", handler(module), f"browser_{stem}",
                         f"Browser module: {what}", "browser client", "none",
                         {200: Reply(f"An ES module ({JS}).", None, JS)},
                         description="No dependencies, no build step; ETag and 304."))
    return out
