"""Which namespace each partition's projection lives in (``Keys.partition_view``).

Absent means :data:`LIVE_NS`. ``herald replay`` switches a partition's pointer in
the same script that checks the rebuilt namespace caught up (consumers/replay/rebuild.py).
The cache here is never trusted alone: every reader and writer sends the namespace
it believes in along with its script or transaction and is told when it changed,
then calls :meth:`Views.remember` and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from herald.streams.keys import LIVE_NS, Keys
from herald.streams.settings import Settings

NS_RETRIES = 5  # switches in a row a snapshot tolerates before giving up


def ns_of(value: Any) -> str:
    """The namespace a pointer read gives (bytes or None)."""
    if value is None:
        return LIVE_NS
    return value.decode() if isinstance(value, bytes) else str(value)


class Views:
    """Per-process cache of partition → namespace."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self._ns: dict[int, str] = {}

    def cached(self, partition: int) -> str:
        """The believed namespace (LIVE_NS before the first read)."""
        return self._ns.get(partition, LIVE_NS)

    async def ns(self, partition: int) -> str:
        ns = self._ns.get(partition)
        if ns is None:
            value = await self.redis.get(self.keys.partition_view(partition))
            ns = self._ns[partition] = ns_of(value)
        return ns

    def remember(self, partition: int, ns: str) -> str:
        self._ns[partition] = ns
        return ns

    async def read(self, partitions: Sequence[int]) -> dict[int, str]:
        """Fresh pointers of many partitions (one pipeline), remembered."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.get(self.keys.partition_view(p))
            replies = await pipe.execute()
        for p, value in zip(partitions, replies, strict=True):
            self._ns[p] = ns_of(value)
        return {p: self._ns[p] for p in partitions}

    async def snapshot(self, partition: int, build: Callable[[Any, str], None]) -> list[Any]:
        """Consistent reads of one partition's current namespace.

        One MULTI: the view pointer plus ``build(pipe, ns)``'s reads for the
        namespace believed current; when the pointer says otherwise (a replay
        switched it), remember it and read again. Raises RuntimeError after
        :data:`NS_RETRIES` switches in a row.
        """
        for _ in range(NS_RETRIES):
            ns = self.cached(partition)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.partition_view(partition))
                build(pipe, ns)
                replies = await pipe.execute()
            actual = ns_of(replies[0])
            if actual == ns:
                return list(replies[1:])
            self.remember(partition, actual)
        raise RuntimeError(f"view of partition {partition} keeps switching")
