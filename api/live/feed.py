"""A partition's relay in one API process: from "user changed" signals to messages.

One :class:`Feed` per partition that has local interest (a live connection or a
long-poll waiter). Its ``cursor`` is the log position up to which every entry has
been turned into messages and pushed to the local connections. A signal for a
local user raises the ``target``; the feed's task reads the log from ``cursor``
to ``target`` (api/live/journal.py), builds each local user's messages from the
projection (api/live/changes.py) and pushes them, then advances ``cursor``.

Guarantees:
- Every entry is read once per feed, in order; signals arriving during a read
  coalesce into the next one, so a burst costs one read, not one per signal.
- The cursor starts at the partition's checkpoint read *after* the subscription
  is confirmed, so nothing projected later can be missed; a re-subscription after
  a lost pub/sub connection, and a periodic reconcile, move the target to the
  checkpoint (recovery by re-reading, not by hoping).
- When the feed is more than ``HERALD_LIVE_RESUME_MAX`` entries behind (Redis was
  unreachable for long), its connections get a ``reset`` message and the cursor
  jumps to the target instead of reading on.

Failure modes: Redis errors are logged (``live_feed_failed``) and retried after a
back-off; messages are late, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Protocol

import redis.exceptions

from herald.api.live import messages as m
from herald.api.live.changes import Changes, relevant
from herald.api.live.journal import Entry, Journal
from herald.consumers.projection.queries import InboxQueries
from herald.streams.connection import Backoff
from herald.streams.errors import RedisUnavailableError
from herald.streams.events import TokensRevoked
from herald.streams.log import get_logger

log = get_logger(__name__)
ORIGIN = "0-0"
ERRORS = (redis.exceptions.RedisError, RedisUnavailableError, OSError)


class Relay(Protocol):
    """What a feed hands its messages to: the hub of its process (api/live/hub.py)."""

    def is_local(self, user: str) -> bool:
        """Whether ``user`` has a live connection in this process."""

    def deliver(self, user: str, batch: list[m.Message]) -> None:
        """Push ``batch`` to every local connection of ``user``."""

    def revoke(self, user: str, before_ms: int) -> None:
        """Close ``user``'s connections whose token was issued before ``before_ms``."""

    async def reset_partition(self, partition: int, position: str, reason: str) -> None:
        """Tell every local connection of ``partition`` to refetch from ``position``."""

    def wake_waiters(self, partition: int) -> None:
        """Wake the long-poll waiters of ``partition`` (signals may have been missed)."""


class Feed:
    """Cursor, target and task of one partition."""

    def __init__(self, partition: int, relay: Relay, journal: Journal, queries: InboxQueries,
                 changes: Changes, resume_max: int) -> None:
        self.partition = partition
        self.relay = relay
        self.journal = journal
        self.queries = queries
        self.changes = changes
        self.resume_max = resume_max
        self.cursor: str | None = None  # None until confirmed and initialised
        self.cursor_key: m.Key = m.ZERO
        self.target_key: m.Key = m.ZERO
        self.target: str | None = None
        self.interest = 0
        self.idle_since = 0.0
        self.confirmed = False
        self.active = asyncio.Event()  # set once the cursor is initialised
        self._recover = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"live-feed-{self.partition}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def confirm(self) -> None:
        """The subscription is active: the first time, initialise; later, recover."""
        if self.confirmed:
            self.recover()
            return
        self.confirmed = True
        self._wake.set()

    def recover(self) -> None:
        """Read up to the checkpoint (signals may have been missed)."""
        self._recover = True
        self._wake.set()

    def want(self, position: str) -> None:
        """A local user changed at ``position``: read at least that far."""
        key = m.key_of(position)
        if key > self.target_key:
            self.target_key, self.target = key, position
        if self.cursor is not None and key > self.cursor_key:
            self._wake.set()

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._step()
                backoff.reset()
            except ERRORS as exc:
                wait = backoff.next()
                log.warning("live_feed_failed", partition=self.partition, error=str(exc),
                            retry_in_s=wait)
                await asyncio.sleep(wait)
                self._wake.set()

    async def _step(self) -> None:
        queries = self.queries
        if self.cursor is None:
            if not self.confirmed:
                return
            start = await queries.checkpoint(self.partition) or ORIGIN
            self._advance(start)
            self.want(start)
            self.active.set()
        if self._recover:
            self._recover = False
            checkpoint = await queries.checkpoint(self.partition)
            if checkpoint is not None:
                self.want(checkpoint)
            self.relay.wake_waiters(self.partition)
        while self.target is not None and self.target_key > self.cursor_key:
            await self._pull(self.target)

    def _advance(self, position: str) -> None:
        self.cursor, self.cursor_key = position, m.key_of(position)

    async def _pull(self, target: str) -> None:
        assert self.cursor is not None
        relay = self.relay
        read = await self.journal.read(self.partition, self.cursor, target, self.resume_max)
        if not read.complete:
            await relay.reset_partition(self.partition, target, "the server fell behind the log")
            self._advance(target)
            return
        for entry in read.entries:  # "sign out everywhere": close the user's streams
            payload = entry.event.payload
            if isinstance(payload, TokensRevoked) and relay.is_local(entry.event.user):
                relay.revoke(entry.event.user, payload.before)
        by_user: dict[str, list[Entry]] = defaultdict(list)
        for entry in relevant(read.entries):
            if relay.is_local(entry.event.user):
                by_user[entry.event.user].append(entry)
        if by_user:
            built = await asyncio.gather(*(self.changes.messages(user, entries)
                                           for user, entries in by_user.items()))
            for user, batch in zip(by_user, built, strict=True):
                relay.deliver(user, batch)
        self._advance(read.last)
