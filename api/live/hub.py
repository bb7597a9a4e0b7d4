"""The live hub of one API process: connections, limits, fan-out, heartbeats, shutdown.

Fan-out: the projector publishes "user u changed at x" on one channel per
partition (consumers/projection/applier.py). The hub subscribes a partition's channel while
at least one local connection or long-poll waiter needs it (and for
:data:`LINGER_S` after, so reconnecting clients do not churn subscriptions), and
ignores signals of users it does not serve. Per-user channels do not exist, and
filtering a foreign signal is a dict lookup (about a microsecond; measured by
scripts/bench_live.py as ``signals_ignored``), so per-partition subscription is
both what the projector offers and cheap. One :class:`~api.live.feed.Feed` per
partition turns signals into messages; the hub pushes them to each connection of
the user, encoded once.

Limits: ``HERALD_LIVE_MAX_PER_USER`` connections per user and
``HERALD_LIVE_MAX_CONNECTIONS`` per process (refused with 429 and 503
problem+json, with Retry-After); per-connection buffers of ``HERALD_LIVE_BUFFER``
messages (api/live/connection.py).

Housekeeping runs once a second (:meth:`Hub._housekeeping`): heartbeats, expired
credentials, stuck or vanished clients (api/live/ticker.py), idle feeds dropped, and
every :data:`RECONCILE_S` each feed re-reads up to its partition's checkpoint, so
even a signal lost without a reconnect is made up for. Errors of a pass are logged
(``live_tick_failed``) and the next pass runs anyway.

Shutdown: :meth:`shutdown` (the app's ``on_shutdown``) closes every connection
with reason ``shutdown`` and refuses new ones; :meth:`stop` (cleanup) ends the
tasks and the pub/sub connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from herald.api.errors import TooManyRequests, Unavailable
from herald.api.live import messages as m
from herald.api.live.changes import Changes
from herald.api.live.connection import REVOKED, SHUTDOWN, LiveConnection
from herald.api.live.feed import Feed
from herald.api.live.journal import Journal
from herald.api.live.subscriber import Subscriber
from herald.api.live.ticker import TICK_S, beat, idle_feeds
from herald.consumers.projection.queries import InboxQueries
from herald.streams.entries import EntryReader
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings

log = get_logger(__name__)
RECONCILE_S = 30.0
SUBSCRIBE_TIMEOUT_S = 5.0
RETRY_AFTER_S = 2
# Streams being opened at once (each costs a few reads, maybe a log scan): a reconnect
# storm after a restart queues here instead of exhausting the Redis pool.
OPEN_CONCURRENCY = 16


class Hub:
    """Registry and fan-out of live connections; one per app."""

    def __init__(self, redis: Any, settings: Settings, queries: InboxQueries) -> None:
        self.settings = settings
        self.queries = queries
        self.keys = Keys(settings.prefix)
        self.journal = Journal(redis, self.keys, EntryReader(settings))
        self.changes = Changes(queries)
        self.subscriber = Subscriber(redis, self.keys, self._on_signal, self._on_subscribed)
        self.users: dict[str, set[LiveConnection]] = {}
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.feeds: dict[int, Feed] = {}
        self.connections = 0
        self.closing = False
        self.stuck_s = max(5.0, 2 * settings.live_heartbeat_s)
        self.reconcile_s = RECONCILE_S
        self.counters = {"opened": 0, "refused": 0, "slow_closed": 0, "resets": 0,
                         "messages": 0, "signals_relevant": 0}
        self.open_gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.subscriber.start()
        self._ticker = asyncio.create_task(self._housekeeping(), name="live-ticker")

    def shutdown(self) -> None:
        """Refuse new connections and close the open ones with reason ``shutdown``."""
        self.closing = True
        for conns in self.users.values():
            for conn in conns:
                conn.close(SHUTDOWN)
        for events in self.waiters.values():
            for event in events:
                event.set()

    async def stop(self) -> None:
        self.shutdown()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for feed in list(self.feeds.values()):
            await feed.stop()
        self.feeds.clear()
        await self.subscriber.stop()

    # ---------------------------------------------------------- connections
    def partition(self, user: str) -> int:
        return partition_for(user, self.settings.partitions)

    def admit(self, user: str) -> None:
        """Raise the refusal for one more connection of ``user``, if any."""
        s = self.settings
        if self.closing:
            raise Unavailable("the server is shutting down; reconnect in a moment",
                              retry_after=RETRY_AFTER_S)
        if self.connections >= s.live_max_connections:
            self.counters["refused"] += 1
            raise Unavailable(f"this server holds its maximum of {s.live_max_connections} live "
                              "connections; retry later (or another server)",
                              retry_after=RETRY_AFTER_S)
        if len(self.users.get(user, ())) >= s.live_max_per_user:
            self.counters["refused"] += 1
            raise TooManyRequests(f"this user already has {s.live_max_per_user} live "
                                  "connections on this server; close one first",
                                  retry_after=RETRY_AFTER_S)

    async def attach(self, conn: LiveConnection) -> Feed:
        """Register ``conn`` (after :meth:`admit`) once its partition's feed is live."""
        self.admit(conn.user)
        self.users.setdefault(conn.user, set()).add(conn)
        self.connections += 1
        self.counters["opened"] += 1
        try:
            return await self._interest(conn.partition)
        except BaseException:
            self._forget(conn)
            raise

    def detach(self, conn: LiveConnection) -> None:
        if self._forget(conn):
            self._release(conn.partition)

    def _forget(self, conn: LiveConnection) -> bool:
        conns = self.users.get(conn.user)
        if conns is None or conn not in conns:
            return False
        conns.discard(conn)
        if not conns:
            del self.users[conn.user]
        self.connections -= 1
        return True

    def is_local(self, user: str) -> bool:
        return user in self.users

    def revoke(self, user: str, before_ms: int) -> None:
        """Close ``user``'s streams opened with a token issued before ``before_ms``."""
        for conn in list(self.users.get(user, ())):
            if conn.issued_at is not None and conn.issued_at * 1000 < before_ms:
                conn.close(REVOKED)

    def deliver(self, user: str, batch: list[m.Message]) -> None:
        """Push ``batch`` (in order) to every connection of ``user``."""
        for conn in self.users.get(user, ()):
            for message in batch:
                if conn.push(message):
                    self.counters["messages"] += 1
                elif conn.closed:
                    break

    async def reset_partition(self, partition: int, position: str, reason: str) -> None:
        """Tell every local connection of ``partition`` to refetch (the feed skipped ahead)."""
        users = [u for u, conns in self.users.items()
                 if any(c.partition == partition for c in conns)]
        counts = await asyncio.gather(*(self.queries.unread_count(u) for u in users))
        for user, count in zip(users, counts, strict=True):
            self.counters["resets"] += 1
            self.deliver(user, [m.reset(position, count, reason)])

    # ----------------------------------------------------------------- feeds
    async def _interest(self, partition: int) -> Feed:
        feed = self.feeds.get(partition)
        if feed is None:
            feed = self.feeds[partition] = Feed(partition, self, self.journal, self.queries,
                                                self.changes, self.settings.live_resume_max)
            feed.start()
            try:
                await self.subscriber.subscribe(partition)
            except BaseException:
                del self.feeds[partition]
                await feed.stop()
                raise
        feed.interest += 1
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                await feed.active.wait()
        except TimeoutError as exc:
            self._release(partition)
            raise Unavailable("live updates are unavailable: the event store does not "
                              "answer; retry shortly", retry_after=RETRY_AFTER_S) from exc
        except BaseException:
            self._release(partition)
            raise
        return feed

    def _release(self, partition: int) -> None:
        feed = self.feeds.get(partition)
        if feed is not None:
            feed.interest -= 1
            if feed.interest <= 0:
                feed.idle_since = time.monotonic()

    async def _housekeeping(self) -> None:
        """Run the housekeeping passes until cancelled (see the module docstring)."""
        last_reconcile = time.monotonic()
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                now = time.monotonic()
                beat(itertools.chain.from_iterable(self.users.values()), self.feeds,
                     heartbeat_s=self.settings.live_heartbeat_s, stuck_s=self.stuck_s,
                     now=loop.time())
                for partition in idle_feeds(self.feeds, now):
                    feed = self.feeds.pop(partition)
                    await self.subscriber.unsubscribe(partition)
                    await feed.stop()
                if now - last_reconcile >= self.reconcile_s:
                    last_reconcile = now
                    for feed in self.feeds.values():
                        if feed.active.is_set():
                            feed.recover()
            except Exception:  # housekeeping must survive anything one pass meets
                log.exception("live_tick_failed")

    def _on_subscribed(self, partition: int) -> None:
        feed = self.feeds.get(partition)
        if feed is not None:
            feed.confirm()

    def _on_signal(self, partition: int, user: str, position: str) -> None:
        events = self.waiters.get(user)
        if events:
            for event in events:
                event.set()
        if user in self.users:
            feed = self.feeds.get(partition)
            if feed is not None:
                self.counters["signals_relevant"] += 1
                feed.want(position)

    def wake_waiters(self, partition: int) -> None:
        for user, events in self.waiters.items():
            if self.partition(user) == partition:
                for event in events:
                    event.set()

    @contextlib.asynccontextmanager
    async def waiting(self, user: str) -> AsyncIterator[asyncio.Event]:
        """An event set on every signal for ``user`` (and on recovery), while inside."""
        if self.closing:
            raise Unavailable("the server is shutting down", retry_after=RETRY_AFTER_S)
        event = asyncio.Event()
        self.waiters.setdefault(user, set()).add(event)
        partition = self.partition(user)
        try:
            await self._interest(partition)
        except BaseException:
            self._drop_waiter(user, event)
            raise
        try:
            yield event
        finally:
            self._drop_waiter(user, event)
            self._release(partition)

    def _drop_waiter(self, user: str, event: asyncio.Event) -> None:
        events = self.waiters.get(user)
        if events is not None:
            events.discard(event)
            if not events:
                del self.waiters[user]

    def stats(self) -> dict[str, Any]:
        """Numbers for the operator page and metrics."""
        return {
            "connections": self.connections,
            "users": len(self.users),
            "waiters": sum(len(e) for e in self.waiters.values()),
            "partitions_subscribed": sorted(self.feeds),
            "signals": self.subscriber.signals,
            "signals_ignored": self.subscriber.signals - self.counters["signals_relevant"],
            "pubsub_reconnects": self.subscriber.reconnects,
            "limits": {"per_process": self.settings.live_max_connections,
                       "per_user": self.settings.live_max_per_user,
                       "buffer": self.settings.live_buffer},
            **self.counters,
        }


HUB: web.AppKey[Hub] = web.AppKey("live_hub")
