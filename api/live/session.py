"""Opening a live stream: admission, registration, gapless resume, the first message.

Order matters and is the whole point: the connection is registered (so live
messages start queuing) and its partition's subscription confirmed *before* the
checkpoint ``C`` is read; the backlog covers ``(since, C]`` from the log, the
queued live messages cover what comes after, and :meth:`LiveConnection.start`
drops the queued ones at or below ``C``. So nothing between the two is lost and
nothing is sent twice — across API restarts too, because positions come from the
log, not from this process.

Resume outcomes (the first message after the backlog):
- no ``since``: ``ready`` at ``C`` (the client loads the inbox over REST);
- ``since`` at or after the user's last inbox change: ``ready``, nothing replayed
  (one read, no log scan: the common case for idle users);
- otherwise the user's entries in ``(since, C]`` as messages, then ``ready``;
- ``reset`` when ``since`` is unreadable or ahead of ``C`` (not a position this
  deployment gave), when the log was trimmed or had entries deleted after
  ``since`` (it no longer holds everything the client missed), or when more than
  ``HERALD_LIVE_RESUME_MAX`` log entries lie between ``since`` and ``C``
  (refetching is cheaper than replaying).

Failure modes: refusals (429 per user, 503 per process or shutting down) are
raised before anything is sent, as problem+json; Redis errors propagate (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jwt
from aiohttp import web

from herald.api.context import METRICS, QUERIES
from herald.api.live import messages as m
from herald.api.live.changes import relevant
from herald.api.live.connection import LiveConnection
from herald.api.live.hub import HUB, Hub
from herald.api.middleware import IN_FLIGHT
from herald.api.routing import PRINCIPAL, until_deadline

ORIGIN = "0-0"


@dataclass(slots=True)
class Opening:
    """A registered connection, what to send first, and the position it covers."""

    conn: LiveConnection
    backlog: list[m.Message]
    first: m.Message
    covered: str


def token_expiry(request: web.Request) -> float | None:
    """Loop time at which the caller's user token expires (None for a service key).

    The token was verified by the route's authentication already; only ``exp`` is read.
    """
    principal = request.get(PRINCIPAL)
    if principal is None or principal.is_service:
        return None
    credential = request.headers.get("Authorization", "").partition(" ")[2].strip()
    try:
        exp = jwt.decode(credential, options={"verify_signature": False}).get("exp")
    except jwt.InvalidTokenError:
        return None
    if not isinstance(exp, int | float):
        return None
    return asyncio.get_running_loop().time() + (float(exp) - time.time())


async def open_stream(request: web.Request, user: str, kind: str, since: str | None,
                      *, unreadable: bool = False) -> Opening:
    """Register a connection of ``user`` and compute its backlog and first message."""
    app = request.app
    hub = app[HUB]
    principal = request.get(PRINCIPAL)
    issued = None if principal is None or principal.is_service else principal.issued_at
    conn = LiveConnection(user, hub.partition(user), kind, hub.settings.live_buffer,
                          token_expiry(request), issued)
    try:
        # Opening is bounded like any request (HERALD_REQUEST_TIMEOUT): a store that
        # does not answer gives 503, never a stream that hangs before it starts.
        async with until_deadline(request):
            await hub.attach(conn)
            async with hub.open_gate:
                backlog, first, covered = await _resume(app, hub, user, conn.partition,
                                                        since, unreadable)
    except BaseException:
        hub.detach(conn)
        raise
    if first.type == m.RESET:
        hub.counters["resets"] += 1
    return Opening(conn, backlog, first, covered)


async def _resume(app: web.Application, hub: Hub, user: str, partition: int,
                  since: str | None, unreadable: bool
                  ) -> tuple[list[m.Message], m.Message, str]:
    queries = app[QUERIES]
    covered = await queries.checkpoint(partition) or ORIGIN
    if since is None and not unreadable:
        unread = await queries.unread_count(user)
        return [], m.ready(covered, unread, resumed=False, replayed=0), covered
    if unreadable or since is None or m.key_of(since) > m.key_of(covered):
        unread = await queries.unread_count(user)
        return [], m.reset(covered, unread, "unknown position: not one this server gave"), \
            covered
    last = await queries.last_change(user)
    if last is None or m.key_of(last) <= m.key_of(since):
        unread = await queries.unread_count(user)
        return [], m.ready(covered, unread, resumed=True, replayed=0), covered
    if not await hub.journal.intact_after(partition, since):
        unread = await queries.unread_count(user)
        return [], m.reset(covered, unread, "the log no longer holds everything after this "
                           "position"), covered
    read = await hub.journal.read(partition, since, covered, hub.settings.live_resume_max)
    if not read.complete:
        unread = await queries.unread_count(user)
        reason = f"too far behind: more than {hub.settings.live_resume_max} log entries to replay"
        return [], m.reset(covered, unread, reason), covered
    backlog = await hub.changes.messages(user, relevant(read.entries, user))
    unread = await queries.unread_count(user)
    return backlog, m.ready(covered, unread, resumed=True, replayed=len(backlog)), covered


@contextlib.asynccontextmanager
async def streaming(request: web.Request, opening: Opening) -> AsyncIterator[None]:
    """While a stream is open: not counted as an in-flight request; detached at the end.

    A live stream is counted against the live connection limits instead of
    ``HERALD_API_MAX_INFLIGHT``, which guards short requests.
    """
    app = request.app
    counter = app[IN_FLIGHT]
    counter[0] -= 1
    app[METRICS].in_flight.dec()
    conn = opening.conn
    conn.last_progress = asyncio.get_running_loop().time()
    try:
        yield
    finally:
        counter[0] += 1
        app[METRICS].in_flight.inc()
        app[HUB].detach(conn)
        if conn.reason == "slow_consumer":
            app[HUB].counters["slow_closed"] += 1
