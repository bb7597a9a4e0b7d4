"""User → partition mapping and the partition count recorded in Redis.

The mapping is a stable hash (BLAKE2b of the UTF-8 user id), never Python's
``hash()``, so every process and every release agrees. The count is recorded in
Redis on first start; a process configured with another count refuses to start,
because it would route users to other streams and break per-user order.
"""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from typing import Any

from herald.streams.errors import PartitionMismatchError
from herald.streams.keys import Keys


@lru_cache(maxsize=65_536)  # bounded; a hit costs a tenth of the hash
def partition_for(user: str, partitions: int) -> int:
    """The partition of ``user`` among ``partitions``."""
    digest = hashlib.blake2b(user.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def _check(recorded: Any, partitions: int) -> None:
    if recorded is not None and int(recorded) != partitions:
        raise PartitionMismatchError(
            f"HERALD_PARTITIONS={partitions} but this Redis was set up with {int(recorded)} "
            f"partitions; set HERALD_PARTITIONS={int(recorded)} (changing the count needs "
            "a migration: users would move to other streams)"
        )


async def ensure_partition_count(redis: Any, keys: Keys, partitions: int,
                                 dedupe_window_ms: int | None = None) -> None:
    """Record the count on first start; raise PartitionMismatchError on a mismatch.

    ``dedupe_window_ms`` (the producer's) is recorded too, at every start: producers in
    other languages read both from ``herald:meta`` (PROTOCOL.md)."""
    await redis.hsetnx(keys.meta(), "partitions", partitions)
    await redis.hsetnx(keys.meta(), "created_at", int(time.time() * 1000))
    if dedupe_window_ms is not None:
        await redis.hset(keys.meta(), "dedupe_window_ms", dedupe_window_ms)
    _check(await redis.hget(keys.meta(), "partitions"), partitions)


def ensure_partition_count_sync(redis: Any, keys: Keys, partitions: int,
                                dedupe_window_ms: int | None = None) -> None:
    """Synchronous twin of :func:`ensure_partition_count`."""
    redis.hsetnx(keys.meta(), "partitions", partitions)
    redis.hsetnx(keys.meta(), "created_at", int(time.time() * 1000))
    if dedupe_window_ms is not None:
        redis.hset(keys.meta(), "dedupe_window_ms", dedupe_window_ms)
    _check(redis.hget(keys.meta(), "partitions"), partitions)
