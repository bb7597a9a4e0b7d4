"""Signals: sharded pub/sub of partition channels, on one server or a Cluster.

Herald's signals ("user changed", "schedule changed") are hints that something is
newer in the log or a projection; correctness never depends on one arriving, only
latency does (every reader also re-reads on its own timer). They travel on sharded
channels — ``SPUBLISH`` from the projector's script, ``SSUBSCRIBE`` here — named
with the partition's hash tag (``Keys.signal_channel``), so on a Cluster a message
goes only to the node that serves the partition's slot instead of being broadcast
over the cluster bus to every node, and the cost of live push grows with the
nodes, not with the cluster. On one server ``SSUBSCRIBE`` behaves like
``SUBSCRIBE`` (Redis/Valkey ≥ 7).

:class:`SignalSubscriber` holds one pub/sub connection per node that serves a
subscribed channel (one in all on a single server), reads each in its own task, and
hands every message to ``on_message(channel, data)``. Each subscribe confirmation
goes to ``on_subscribed(channel)`` — also the ones sent after a reconnect, a
failover or a slot move — which is how a reader learns it may have missed signals
and must re-read.

Failure modes: a lost connection (a node killed, a failover) and a slot that moved
(the server answers ``MOVED`` or pushes ``sunsubscribe``) make the subscriber
refresh the cluster's slot map and re-subscribe each channel on the node that
serves it now, retrying with a back-off from :data:`BACKOFF_INITIAL_S` to
:data:`BACKOFF_MAX_S` (logged as ``signals_lost``). Nothing is raised to the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from herald.streams.connection import Backoff, is_cluster, refresh_topology, text
from herald.streams.log import get_logger

log = get_logger(__name__)
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 2.0
READ_TIMEOUT_S = 5.0  # a silent connection is still read this often (a dead peer shows)
ERRORS = (redis.exceptions.RedisError, OSError)
CLOSE_WAIT_S = 1.0
SINGLE = "server"  # the one "node" of a single server


class _Link:
    """One node's pub/sub connection and the channels subscribed on it."""

    def __init__(self, name: str, pubsub: Any, client: Any | None) -> None:
        self.name = name
        self.pubsub = pubsub
        self.client = client  # owned (a Cluster node's client), closed with the link
        self.channels: set[str] = set()
        self.leaving: dict[str, int] = {}  # our own SUNSUBSCRIBEs not yet confirmed
        self.task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop the reader and close the connection — never waiting on a dead peer: a
        read that swallows its cancellation (redis-py does, reconnecting) is given
        :data:`CLOSE_WAIT_S`, then its connection is closed under it."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=CLOSE_WAIT_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pubsub.aclose(), CLOSE_WAIT_S)
        if self.task is not None and not self.task.done():
            await asyncio.wait([self.task], timeout=CLOSE_WAIT_S)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()


class SignalSubscriber:
    """Sharded subscriptions of one process (see the module docstring)."""

    def __init__(self, redis: Any, on_message: Callable[[str, bytes], None],
                 on_subscribed: Callable[[str], None] | None = None, *,
                 name: str = "signals") -> None:
        self._redis = redis
        self._on_message = on_message
        self._on_subscribed = on_subscribed or (lambda _channel: None)
        self._name = name
        self._cluster = is_cluster(redis)
        self._links: dict[str, _Link] = {}
        self._wanted: set[str] = set()
        self._lock = asyncio.Lock()
        self._repair: asyncio.Task[None] | None = None
        self._closed = False
        self.messages = 0  # messages received (all channels)
        self.reconnects = 0  # connections lost or channels moved

    @property
    def channels(self) -> set[str]:
        return set(self._wanted)

    async def subscribe(self, channels: Iterable[str]) -> None:
        """SSUBSCRIBE these channels (each on its node); confirmations come later."""
        new = [c for c in channels if c not in self._wanted]
        if not new:
            return
        self._wanted.update(new)
        async with self._lock:
            await self._place(new)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [c for c in channels if c in self._wanted]
        self._wanted.difference_update(gone)
        async with self._lock:
            for link in list(self._links.values()):
                mine = [c for c in gone if c in link.channels]
                if mine:
                    link.channels.difference_update(mine)
                    with contextlib.suppress(*ERRORS):
                        for channel in mine:
                            link.leaving[channel] = link.leaving.get(channel, 0) + 1
                            await link.pubsub.sunsubscribe(channel)

    async def stop(self) -> None:
        self._closed = True
        if self._repair is not None:
            self._repair.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repair
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()

    # ----------------------------------------------------------------- placing
    def _node_of(self, channel: str) -> tuple[str, Any]:
        if not self._cluster:
            return SINGLE, None
        node = self._redis.get_node_from_key(channel)
        return node.name, node

    async def _place(self, channels: Iterable[str]) -> None:
        """Subscribe channels on the node serving each (caller holds the lock)."""
        if self._cluster:
            await self._redis.initialize()  # the slot map (a new client has none yet)
        by_node: dict[str, tuple[Any, list[str]]] = {}
        for channel in channels:
            name, node = self._node_of(channel)
            by_node.setdefault(name, (node, []))[1].append(channel)
        for name, (node, wanted) in by_node.items():
            link = self._links.get(name)
            if link is None:
                link = self._links[name] = self._open(name, node)
            for channel in wanted:  # one SSUBSCRIBE may not span slots
                await link.pubsub.ssubscribe(channel)
                link.channels.add(channel)
            if link.task is None or link.task.done():
                link.task = asyncio.create_task(self._read(link), name=f"{self._name}-{name}")

    def _open(self, name: str, node: Any) -> _Link:
        if node is None:
            return _Link(name, self._redis.pubsub(), None)
        kwargs = {k: v for k, v in node.connection_kwargs.items() if k != "retry"}
        pool = aioredis.ConnectionPool(connection_class=node.connection_class, **kwargs)
        client = aioredis.Redis(connection_pool=pool)
        return _Link(name, client.pubsub(), client)

    # ----------------------------------------------------------------- reading
    async def _read(self, link: _Link) -> None:
        while True:
            try:
                message = await link.pubsub.get_message(timeout=READ_TIMEOUT_S)
            except ERRORS as exc:
                self._lost(link, exc)
                return
            if message is not None and self._dispatch(link, message):
                return

    def _dispatch(self, link: _Link, message: dict[str, Any]) -> bool:
        """Hand one message over; True when the link lost a channel (slot moved)."""
        kind, channel = text(message.get("type")), text(message.get("channel"))
        if kind == "smessage":
            self.messages += 1
            if channel in self._wanted:
                self._on_message(channel, message.get("data") or b"")
        elif kind == "ssubscribe":
            if channel in self._wanted:
                self._on_subscribed(channel)
        elif kind == "sunsubscribe" and link.leaving.get(channel, 0) > 0:
            # Ours (the channel may be wanted again since: its SSUBSCRIBE follows).
            link.leaving[channel] -= 1
            if not link.leaving[channel]:
                del link.leaving[channel]
        elif kind == "sunsubscribe" and channel in self._wanted and channel in link.channels:
            # Not asked for: the server dropped it (its slot moved to another node).
            self._lost(link, redis.exceptions.ConnectionError(f"{channel} moved"))
            return True
        return False

    def _lost(self, link: _Link, exc: BaseException) -> None:
        self.reconnects += 1
        log.warning("signals_lost", subscriber=self._name, node=link.name, error=str(exc))
        if self._repair is None or self._repair.done():
            self._repair = asyncio.create_task(self._rebuild(), name=f"{self._name}-repair")

    async def _rebuild(self) -> None:
        """Drop every link, refresh the slot map, subscribe everything again."""
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        while not self._closed:
            await asyncio.sleep(backoff.next())
            async with self._lock:
                links, self._links = list(self._links.values()), {}
                for link in links:
                    await link.close()
                try:
                    if self._cluster:
                        await refresh_topology(self._redis)
                    await self._place(sorted(self._wanted))
                    return
                except ERRORS as exc:
                    log.warning("signals_lost", subscriber=self._name, error=str(exc),
                                retry_in_s=backoff.current)
