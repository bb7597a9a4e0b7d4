"""One live connection's bounded buffer, its position, and why it closes.

The hub pushes messages into the buffer; the connection's handler (SSE or
WebSocket) takes them out in order and writes them. Guarantees:

- **No duplicate, no reordering**: a message at or below the connection's floor
  (the highest position it has been given) is dropped; positions of one user only
  grow, so what passes is in log order.
- **Bounded**: more than ``HERALD_LIVE_BUFFER`` queued messages means the client
  cannot keep up: the connection closes with reason ``slow_consumer`` and its
  buffer is dropped (the client resumes from its last id, nothing is lost).
- While the connection replays its backlog (``started`` is False) live messages
  wait in the buffer; :meth:`start` drops those the backlog covered.

Everything here runs on the event loop thread; no locks are needed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from herald.api.live import messages as m

SHUTDOWN = "shutdown"
SLOW = "slow_consumer"
EXPIRED = "token_expired"
REVOKED = "token_revoked"
CLIENT_GONE = "client_closed"

DETAILS = {
    SHUTDOWN: "the server is shutting down; reconnect (and resume) in a moment",
    SLOW: "the client did not keep up with its messages; reconnect and resume from the "
          "last id received",
    EXPIRED: "the credential expired; reconnect with a fresh token and resume",
    REVOKED: "the user signed out everywhere; sign in again",
    CLIENT_GONE: "the client closed the connection",
}


class LiveConnection:
    """A client's stream: user, buffer, floor position, close reason."""

    __slots__ = ("abort", "buffer", "expires_at", "floor", "floor_position", "gone",
                 "issued_at", "kind", "last_progress", "limit", "partition", "reason",
                 "started", "user", "waiter")

    def __init__(self, user: str, partition: int, kind: str, limit: int,
                 expires_at: float | None = None, issued_at: float | None = None) -> None:
        self.user = user
        self.partition = partition
        self.kind = kind  # "sse" or "ws"
        self.limit = limit
        self.expires_at = expires_at  # loop time when the credential expires
        self.issued_at = issued_at  # a user token's iat (s); None for a service key
        self.buffer: deque[m.Message] = deque()
        self.floor: m.Key = m.ZERO
        self.floor_position: str | None = None
        self.reason: str | None = None
        self.started = False
        self.waiter: asyncio.Future[None] | None = None
        self.last_progress = 0.0
        self.abort: Callable[[], None] | None = None  # tears the transport down
        self.gone: Callable[[], bool] | None = None  # True once the client hung up

    @property
    def closed(self) -> bool:
        return self.reason is not None

    def bind(self, transport: Any, *, watch: bool) -> None:
        """Tie the connection to its socket: ``abort`` tears it down (a stuck client);
        with ``watch``, ``gone`` tells when the client hung up (SSE learns it only from
        the transport; a WebSocket sees the close frame itself)."""
        if transport is None:
            return
        self.abort = transport.abort
        if watch:
            self.gone = transport.is_closing

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, message: m.Message) -> bool:
        """Queue ``message`` unless it is old or the connection closed; False if dropped."""
        if self.reason is not None or message.key <= self.floor:
            return False
        if len(self.buffer) >= self.limit:
            self.close(SLOW)
            return False
        self.buffer.append(message)
        self.floor = message.key
        self.floor_position = message.position
        self._wake()
        return True

    def push_idle(self, position: str | None, now: float) -> bool:
        """A heartbeat when nothing is queued: with ``position`` if it moves the floor."""
        if self.buffer or self.reason is not None or not self.started:
            return False
        if position is not None and m.key_of(position) > self.floor:
            return self.push(m.heartbeat(position))
        self.buffer.append(KEEPALIVE)
        self._wake()
        return True

    def start(self, covered: str) -> None:
        """The backlog up to ``covered`` was sent: drop what it covered, go live."""
        key = m.key_of(covered)
        while self.buffer and self.buffer[0].key <= key and self.buffer[0] is not KEEPALIVE:
            self.buffer.popleft()
        if key > self.floor:
            self.floor, self.floor_position = key, covered
        self.started = True

    def take(self) -> list[m.Message]:
        """Everything queued, in order (empty when nothing is)."""
        items = list(self.buffer)
        self.buffer.clear()
        return items

    async def wait(self) -> None:
        """Until something is queued or the connection closes."""
        if self.buffer or self.reason is not None:
            return
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def close(self, reason: str) -> None:
        """Close with ``reason`` (the first reason wins); the handler writes it and ends."""
        if self.reason is None:
            self.reason = reason
            if reason == SLOW:
                self.buffer.clear()
            self._wake()


KEEPALIVE = m.Message(m.HEARTBEAT, None, {})  # idle keep-alive without a position
