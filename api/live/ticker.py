"""The live hub's housekeeping passes (the hub runs them once every :data:`TICK_S`).

:func:`beat`, over every started connection: a client that hung up is closed (SSE
learns it only from the transport); a credential that expired closes the stream
with ``token_expired``; a connection whose queued messages have not moved for
``stuck_s`` (its socket is full) is closed as ``slow_consumer`` and its transport
torn down, since a blocked write would never see the close; an idle one gets a
heartbeat (with its feed's position when it moved). :func:`idle_feeds` names the
feeds nobody has needed for :data:`LINGER_S` (the hub unsubscribes them).

Leaves only: they read the connections and feeds they are given and touch nothing
else. One pass over 10,000 connections costs about a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from herald.api.live.connection import CLIENT_GONE, EXPIRED, SLOW, LiveConnection
from herald.api.live.feed import Feed

TICK_S = 1.0
LINGER_S = 30.0


def beat(connections: Iterable[LiveConnection], feeds: Mapping[int, Feed], *,
         heartbeat_s: float, stuck_s: float, now: float) -> None:
    """One pass over the connections (``now`` in loop time)."""
    for conn in connections:
        if not conn.started:
            continue
        if conn.reason is None and conn.gone is not None and conn.gone():
            conn.close(CLIENT_GONE)
            continue
        if conn.reason is None and conn.expires_at is not None and now >= conn.expires_at:
            conn.close(EXPIRED)
        stalled = now - conn.last_progress > stuck_s
        if (conn.buffer or conn.reason is not None) and stalled:
            conn.close(SLOW)
            if conn.abort is not None:
                abort, conn.abort = conn.abort, None
                abort()
        elif now - conn.last_progress >= heartbeat_s:
            feed = feeds.get(conn.partition)
            conn.push_idle(feed.cursor if feed is not None else None, now)


def idle_feeds(feeds: Mapping[int, Feed], now: float) -> list[int]:
    """Partitions whose feed has had no interest for :data:`LINGER_S` (monotonic ``now``)."""
    return [p for p, feed in feeds.items()
            if feed.interest <= 0 and now - feed.idle_since >= LINGER_S]
