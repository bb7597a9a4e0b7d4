"""Long-poll: wait until a user's inbox holds an item newer than a position.

For clients that can do neither SSE nor WebSocket: ``GET …/inbox?after=P&wait=S``
holds the request until an item newer than ``P`` exists (then answers the page
at once) or ``S`` seconds pass (then an empty page). :func:`wait_newer` is the
waiting part; the inbox route calls it.

Guarantees: no lost wake-up — the waiter is registered and its partition's
subscription confirmed before the first check, and every signal for the user
(or a pub/sub recovery) triggers a re-check against the projection, so the
answer never depends on a signal alone. A signal that changed no item newer than
``P`` (a read, an archive) only costs one re-check. Without the live hub (an app
built without api/routes_live.py) it polls the projection every
:data:`POLL_S` instead.

Failure modes: Redis errors propagate (the route answers 503); the hub refuses
while the server shuts down (503).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from herald.api.context import QUERIES
from herald.api.live.hub import HUB

POLL_S = 0.25


def _app(app_or_ctx: Any) -> web.Application:
    """An app from an app, a request or a route Call."""
    if isinstance(app_or_ctx, web.Application):
        return app_or_ctx
    app = getattr(app_or_ctx, "app", None)
    if isinstance(app, web.Application):
        return app
    raise TypeError(f"expected an aiohttp app, request or Call, got {type(app_or_ctx)!r}")


async def wait_newer(app_or_ctx: Any, user: str, after_position: str,
                     timeout_s: float) -> bool:
    """True once ``user``'s inbox holds an item with a position above ``after_position``.

    False when ``timeout_s`` passes first (or the server starts shutting down).
    ``after_position`` must be a valid position (ValidationError otherwise).
    """
    app = _app(app_or_ctx)
    queries = app[QUERIES]
    deadline = time.monotonic() + max(0.0, timeout_s)

    async def newer() -> bool:
        page = await queries.page(user, limit=1, after=after_position)
        return bool(page.items)

    hub = app.get(HUB)
    if hub is None:
        while True:
            if await newer():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(POLL_S, left))
    async with hub.waiting(user) as event:
        while True:
            event.clear()
            if await newer():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or hub.closing:
                return False
            try:
                async with asyncio.timeout(left):
                    await event.wait()
            except TimeoutError:
                return await newer()
