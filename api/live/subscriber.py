"""The process's subscriptions to the projector's "user changed" signals.

Subscribes partition channels (``Keys.signal_channel``) on demand through one
:class:`~streams.signals.SignalSubscriber` (sharded pub/sub: per node on a Cluster)
and hands each signal ``{"users": {user: position}}`` (consumers/projection/applier.py)
to ``on_signal``. Each subscribe confirmation goes to ``on_subscribed`` — including
the ones sent again after a lost connection, a failover or a slot move — which is
how the hub learns that signals may have been missed and re-reads instead of hoping.

Failure modes: lost connections are re-established by the signal subscriber
(streams/signals.py); a malformed signal is logged and ignored. Pub/sub is
fire-and-forget by design: correctness never depends on a signal arriving, only
latency does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.signals import SignalSubscriber

log = get_logger(__name__)


class Subscriber:
    """Partition subscriptions of one process."""

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        on_signal: Callable[[int, str, str], None],
        on_subscribed: Callable[[int], None],
    ) -> None:
        self._keys = keys
        self._on_signal = on_signal
        self._on_subscribed = on_subscribed
        self._channels: dict[str, int] = {}
        self._signals = SignalSubscriber(redis, self._dispatch, self._subscribed, name="live")

    @property
    def signals(self) -> int:
        """Signals received (all partitions subscribed)."""
        return self._signals.messages

    @property
    def reconnects(self) -> int:
        return self._signals.reconnects

    def start(self) -> None:
        """Nothing to start: connections open with the first subscription."""

    async def stop(self) -> None:
        await self._signals.stop()

    async def subscribe(self, partition: int) -> None:
        """Send SSUBSCRIBE; the confirmation arrives later through ``on_subscribed``."""
        channel = self._keys.signal_channel(partition)
        self._channels[channel] = partition
        await self._signals.subscribe([channel])

    async def unsubscribe(self, partition: int) -> None:
        channel = self._keys.signal_channel(partition)
        if self._channels.pop(channel, None) is not None:
            await self._signals.unsubscribe([channel])

    def _subscribed(self, channel: str) -> None:
        partition = self._channels.get(channel)
        if partition is not None:
            self._on_subscribed(partition)

    def _dispatch(self, channel: str, data: bytes) -> None:
        partition = self._channels.get(channel)
        if partition is None:
            return
        try:
            users = orjson.loads(data)["users"]
            changed = list(users.items())
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            log.warning("live_signal_malformed", error=str(exc))
            return
        for user, position in changed:
            if isinstance(user, str) and isinstance(position, str):
                self._on_signal(partition, user, position)
