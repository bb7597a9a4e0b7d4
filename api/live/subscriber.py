"""The process's one pub/sub connection to the projector's "user changed" signals.

Subscribes partition channels (``Keys.signal_channel``) on demand and hands each
signal ``{"users": {user: position}}`` (consumers/projection/applier.py) to ``on_signal``. Each
subscribe confirmation goes to ``on_subscribed`` — including the ones redis-py
sends by itself when it re-establishes a lost connection, which is how the hub
learns that signals may have been missed and re-reads instead of hoping.

Failure modes: a lost connection is retried with a back-off doubling from
:data:`BACKOFF_INITIAL_S` to :data:`BACKOFF_MAX_S` seconds, logged as ``live_pubsub_lost``;
a malformed signal is logged and ignored. Pub/sub is fire-and-forget by design:
correctness never depends on a signal arriving, only latency does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
import redis.exceptions

from herald.streams.connection import Backoff, text
from herald.streams.keys import Keys
from herald.streams.log import get_logger

log = get_logger(__name__)
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 2.0
READ_TIMEOUT_S = 1.0
ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class Subscriber:
    """Subscriptions of one process, and the task reading them."""

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        on_signal: Callable[[int, str, str], None],
        on_subscribed: Callable[[int], None],
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._on_signal = on_signal
        self._on_subscribed = on_subscribed
        self._pubsub: Any = None
        self._channels: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.signals = 0  # signals received (all partitions subscribed)
        self.reconnects = 0

    def start(self) -> None:
        self._pubsub = self._redis.pubsub()
        self._task = asyncio.create_task(self._run(), name="live-subscriber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def subscribe(self, partition: int) -> None:
        """Send SUBSCRIBE; the confirmation arrives later through ``on_subscribed``."""
        channel = self._keys.signal_channel(partition)
        self._channels[channel] = partition
        await self._pubsub.subscribe(channel)
        self._ready.set()

    async def unsubscribe(self, partition: int) -> None:
        channel = self._keys.signal_channel(partition)
        if self._channels.pop(channel, None) is not None:
            with contextlib.suppress(*ERRORS):
                await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        await self._ready.wait()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=READ_TIMEOUT_S)
            except ERRORS as exc:
                self.reconnects += 1
                wait = backoff.next()
                log.warning("live_pubsub_lost", error=str(exc), retry_in_s=wait)
                await asyncio.sleep(wait)
                continue
            backoff.reset()
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = text(message.get("type"))
        partition = self._channels.get(text(message.get("channel")))
        if partition is None:
            return
        if kind == "subscribe":
            self._on_subscribed(partition)
            return
        if kind != "message":
            return
        self.signals += 1
        try:
            users = orjson.loads(message["data"])["users"]
            changed = list(users.items())
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            log.warning("live_signal_malformed", error=str(exc))
            return
        for user, position in changed:
            if isinstance(user, str) and isinstance(position, str):
                self._on_signal(partition, user, position)
