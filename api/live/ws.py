"""``GET /v1/users/{user}/ws``: the live stream over a WebSocket.

Same messages as SSE (api/live/messages.py), one JSON text frame each; resume
with ``?since=<position>`` (the ``position`` of the last message received). The
server pings every ``HERALD_LIVE_HEARTBEAT`` and closes a connection whose pong
does not come back; idle connections also get a ``heartbeat`` text frame so
browser code (which cannot see pings) can tell a live socket from a dead one.
Messages from the client are read (control frames need it) and ignored.

Close codes: 1001 shutdown, 1013 too slow (try again), 1008 token expired or revoked; a
``close`` message with the reason comes first. Refusals (auth, limits) happen
before the upgrade, as problem+json responses.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSCloseCode, WSMsgType, web

from herald.api.errors import Problem
from herald.api.live import messages as m
from herald.api.live.connection import (
    CLIENT_GONE,
    DETAILS,
    EXPIRED,
    REVOKED,
    SHUTDOWN,
    SLOW,
    LiveConnection,
)
from herald.api.live.hub import HUB
from herald.api.live.session import Opening, open_stream, streaming
from herald.api.routing import Call

MAX_INBOUND_BYTES = 4096
CLOSE_S = 1.0
CODES = {SHUTDOWN: WSCloseCode.GOING_AWAY, SLOW: WSCloseCode.TRY_AGAIN_LATER,
         EXPIRED: WSCloseCode.POLICY_VIOLATION, REVOKED: WSCloseCode.POLICY_VIOLATION}


class UpgradeRequired(Problem):
    """Raised when the WebSocket route is called without a WebSocket handshake."""

    status, slug, title = 426, "upgrade_required", "Upgrade required"


async def websocket(call: Call) -> web.StreamResponse:
    request = call.request
    settings = call.settings
    ws = web.WebSocketResponse(heartbeat=settings.live_heartbeat_s, autoping=True,
                               max_msg_size=MAX_INBOUND_BYTES, compress=False)
    if not ws.can_prepare(request).ok:
        raise UpgradeRequired("this route speaks WebSocket; send an Upgrade: websocket "
                              "handshake (or use /events for Server-Sent Events)",
                              headers={"Upgrade": "websocket"})
    opening = await open_stream(request, call.owner, "ws", call.query.get("since"))
    reader: asyncio.Task[None] | None = None
    try:
        try:
            await ws.prepare(request)
        except ConnectionError:  # the client left while we resumed
            return ws
        async with streaming(request, opening):
            reader = asyncio.create_task(_read(ws, opening.conn))
            await _pump(request, ws, opening)
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        request.app[HUB].detach(opening.conn)
    return ws


async def _read(ws: web.WebSocketResponse, conn: LiveConnection) -> None:
    """Drain what the client sends (pongs, close) until it goes away."""
    with contextlib.suppress(ConnectionError):
        async for message in ws:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    conn.close(CLIENT_GONE)


async def _pump(request: web.Request, ws: web.WebSocketResponse, opening: Opening) -> None:
    conn = opening.conn
    loop = asyncio.get_running_loop()
    conn.bind(request.transport, watch=False)
    try:
        for message in opening.backlog:
            await ws.send_str(message.text)
        await ws.send_str(opening.first.text)
        conn.start(opening.covered)
        conn.last_progress = loop.time()
        while conn.reason is None:
            await conn.wait()
            for message in conn.take():
                await ws.send_str(message.text)
            conn.last_progress = loop.time()
    except ConnectionError:
        conn.close(CLIENT_GONE)
    reason = conn.reason or CLIENT_GONE
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(CLOSE_S):
            if reason != CLIENT_GONE:
                await ws.send_str(m.close(reason, DETAILS[reason]).text)
            await ws.close(code=CODES.get(reason, WSCloseCode.OK), message=reason.encode())
