"""Live routes: Server-Sent Events and WebSocket streams of a user's inbox changes.

``routes(settings)`` declares them like every route (same authentication, rate
limits, ``{user}`` rules and OpenAPI entries); ``setup(app)`` installs what they
need: the browser-credential middleware (api/live/credentials.py), the hub in a
cleanup context that runs after the app's Redis resources, and an ``on_shutdown``
hook that ends every stream with a ``close`` message before aiohttp waits for
handlers (aiohttp runs ``on_shutdown``, then waits for handlers, then cleanup).

Messages, resume and limits: api/live/messages.py, api/live/session.py,
api/live/hub.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from herald.api.context import METRICS, QUERIES, REDIS, SETTINGS
from herald.api.live import messages, sse, ws
from herald.api.live.credentials import COOKIE, QUERY, browser_credentials
from herald.api.live.hub import HUB, Hub
from herald.api.live.metrics import SYNC_S, LiveMetrics
from herald.api.routes_inbox import USER_PARAM
from herald.api.routing import Param, Reply, Route
from herald.api.schemas import POSITION
from herald.streams.settings import Settings

TAG = "live"
MESSAGES_DOC = (
    "Messages (JSON): `item.created`, `item.changed` (with `item`), `item.removed` (with "
    "`id`), `inbox.read_all` (`up_to`, `read_at`) — each with `unread_count` — and `ready`, "
    "`reset` (refetch the inbox), `heartbeat`, `close` (`reason`). Every message but "
    "`close` carries `position`, its log position. "
)
AUTH_DOC = (
    f"Browsers, which cannot set headers here, may pass the credential as `?{QUERY}=` or in "
    f"the `{COOKIE}` cookie (not accepted cross-origin on the WebSocket). "
)
LIMITS_DOC = (
    "429 when the user has HERALD_LIVE_MAX_PER_USER streams on this server, 503 when the "
    "server holds HERALD_LIVE_MAX_CONNECTIONS or is shutting down."
)


def routes(settings: Settings) -> list[Route]:
    base = "/v1/users/{user}"
    since = Param("since", "query", POSITION,
                  description="Resume after this position (the last message's `position`).")
    token = Param(QUERY, "query", {"type": "string", "minLength": 1},
                  description="The credential, for browsers (instead of Authorization).")
    return [
        Route("GET", f"{base}/events", sse.events, "live_events",
              "Live inbox changes (Server-Sent Events)", TAG, "user",
              {200: Reply("text/event-stream: `id:` is the position, `event:` the type, "
                          "`data:` one LiveMessage (JSON).", "LiveMessage", "text/event-stream")},
              params=(USER_PARAM, since, token), timeout=False,
              description=MESSAGES_DOC + "Resume: `Last-Event-ID` (sent by EventSource on "
              "reconnect; wins over `since`) or `since`: everything after it comes first, "
              "then live messages, with no gap and no duplicate. " + AUTH_DOC + LIMITS_DOC),
        Route("GET", f"{base}/ws", ws.websocket, "live_ws",
              "Live inbox changes (WebSocket)", TAG, "user",
              {101: Reply("Switching to WebSocket: one LiveMessage (JSON text frame) per "
                          "message.", "LiveMessage")},
              params=(USER_PARAM, since, token), timeout=False, errors=(426,),
              description=MESSAGES_DOC + "Resume with `since`. Close codes: 1001 shutdown, "
              "1013 too slow, 1008 token expired. " + AUTH_DOC + LIMITS_DOC),
    ]


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[REDIS], app[SETTINGS], app[QUERIES])
    hub.start()
    app[HUB] = hub
    metrics = app[METRICS]
    live = LiveMetrics(hub, metrics.registry)
    metrics.before_render(live.sync)
    syncing = None
    if metrics.shared_dir is not None:  # other processes answer scrapes too: keep it fresh
        syncing = asyncio.create_task(_sync_every(live), name="live-metrics")
    try:
        yield
    finally:
        if syncing is not None:
            syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncing
        await hub.stop()
        live.unregister(metrics.registry)


async def _sync_every(live: LiveMetrics) -> None:
    while True:
        live.sync()
        await asyncio.sleep(SYNC_S)


async def _on_shutdown(app: web.Application) -> None:
    hub = app.get(HUB)
    if hub is not None:
        hub.shutdown()


def setup(app: web.Application) -> None:
    """Install the middleware, the hub and the shutdown hook (after the app's resources)."""
    app.middlewares.append(browser_credentials)
    app.cleanup_ctx.append(_hub_context)
    app.on_shutdown.append(_on_shutdown)


def schemas(settings: Settings) -> dict[str, dict[str, object]]:
    text = {"type": "string"}
    return {"LiveMessage": {
        "type": "object", "required": ["type"],
        "description": "One live message; see api/live/messages.py for when each field is set.",
        "properties": {
            "type": {"enum": list(messages.TYPES)},
            "position": {**POSITION, "description": "Its log position (the SSE id)."},
            "item": {"$ref": "#/components/schemas/InboxItem"},
            "id": text, "unread_count": {"type": "integer", "minimum": 0},
            "up_to": text, "read_at": {"type": ["string", "null"]},
            "resumed": {"type": "boolean"}, "replayed": {"type": "integer", "minimum": 0},
            "reason": text, "detail": text,
        },
    }}
