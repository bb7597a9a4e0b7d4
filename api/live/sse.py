"""``GET /v1/users/{user}/events``: the live stream as Server-Sent Events.

Wire format (text/event-stream, UTF-8): first ``retry: <ms>`` (the browser's
reconnect delay), then one event per message — ``id: <position>``, ``event:
<type>``, ``data: <JSON>`` (api/live/messages.py) — and ``: keep-alive`` comment
lines when idle. ``EventSource`` reconnects by itself and sends the last id as
``Last-Event-ID``, which takes precedence over ``?since=`` (the URL keeps the
since of the first connection). A ``Last-Event-ID`` that is not a position gets a
``reset`` message rather than an error, since ``EventSource`` gives up on errors.

Ending: on shutdown, when the client is too slow, or when its token expires, a
``close`` event names the reason, then the response ends; the browser reconnects
after ``retry`` and resumes. Writes are batched: everything queued goes out in one
write.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from herald.api.errors import REQUEST_ID
from herald.api.live import messages as m
from herald.api.live.connection import CLIENT_GONE, DETAILS, KEEPALIVE
from herald.api.live.hub import HUB
from herald.api.live.session import Opening, open_stream, streaming
from herald.api.routing import Call
from herald.streams import positions

RETRY_MS = 2000
CLOSE_WRITE_S = 1.0  # the final close event, best effort
BACKLOG_WRITE = 256  # messages per write while replaying
CONNECTION_ERRORS = (ConnectionError,)


def since_of(request: web.Request, query_since: str | None) -> tuple[str | None, bool]:
    """(since, unreadable): ``Last-Event-ID`` wins over ``?since=`` (already validated)."""
    header = request.headers.get("Last-Event-ID")
    if header is None or not header.strip():
        return query_since, False
    header = header.strip()
    if positions.is_position(header):
        return header, False
    return None, True


def _encode(batch: list[m.Message]) -> bytes:
    return b"".join(m.SSE_KEEPALIVE if msg is KEEPALIVE else msg.sse for msg in batch)


async def events(call: Call) -> web.StreamResponse:
    request = call.request
    since, unreadable = since_of(request, call.query.get("since"))
    opening = await open_stream(request, call.owner, "sse", since, unreadable=unreadable)
    try:
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",  # tell proxies (nginx) not to buffer the stream
            "X-Request-Id": request.get(REQUEST_ID, ""),
        })
        try:
            await response.prepare(request)
        except ConnectionError:  # the client left while we resumed
            return response
        async with streaming(request, opening):
            await _pump(request, response, opening)
    finally:
        request.app[HUB].detach(opening.conn)
    return response


async def _pump(request: web.Request, response: web.StreamResponse, opening: Opening) -> None:
    conn = opening.conn
    loop = asyncio.get_running_loop()
    conn.bind(request.transport, watch=True)
    try:
        head = f"retry: {RETRY_MS}\n\n".encode()
        backlog = opening.backlog
        for start in range(0, len(backlog), BACKLOG_WRITE):
            await response.write(head + _encode(backlog[start:start + BACKLOG_WRITE]))
            head = b""
        await response.write(head + opening.first.sse)
        conn.start(opening.covered)
        conn.last_progress = loop.time()
        while conn.reason is None:
            await conn.wait()
            batch = conn.take()
            if batch:
                await response.write(_encode(batch))
                conn.last_progress = loop.time()
    except CONNECTION_ERRORS:
        conn.close(CLIENT_GONE)
        return
    reason = conn.reason or CLIENT_GONE
    if reason != CLIENT_GONE:
        with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
            async with asyncio.timeout(CLOSE_WRITE_S):
                await response.write(m.close(reason, DETAILS[reason]).sse)
                await response.write_eof()
