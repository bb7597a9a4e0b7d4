"""Projector lag, dead letters and retention per partition, read for /readyz and /metrics.

Lag of a partition is the age of its oldest entry the projector has not applied:
``now - time(first entry after the checkpoint)``, 0 when the checkpoint is at the
stream's end. Unlike "last entry minus checkpoint", it does not jump when an
entry arrives after a quiet hour. Dead letters are the length of the partition's
dead-letter stream; ``retained`` the length of its stream (what Redis holds of the
log: retention trims the rest into the archive); ``trim_blocked`` the consumer group
that holds trimming back, when one does (consumers/retention/role.py).

One probe is shared by the app and caches its reading for ``CACHE_S`` so frequent
scrapes cost one round of reads. Redis errors propagate to the caller.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from herald.streams.keys import Keys

CACHE_S = 1.0
CONCURRENCY = 8  # checkpoint reads in flight at once (each is one MULTI)


@dataclass(frozen=True, slots=True)
class Reading:
    """One probe result; ``lag_s[p]`` and ``dead_letters[p]`` per partition."""

    lag_s: dict[int, float]
    dead_letters: dict[int, int]
    taken_at: float
    retained: dict[int, int] = field(default_factory=dict)
    trim_blocked: dict[int, str] = field(default_factory=dict)

    @property
    def max_lag_s(self) -> float:
        return max(self.lag_s.values(), default=0.0)


def _ms(position: bytes | str) -> int:
    text = position.decode() if isinstance(position, bytes) else position
    return int(text.split("-", 1)[0])


class LagProbe:
    """Reads checkpoints through the projector's queries and the streams in one pipeline."""

    def __init__(self, redis: Any, queries: Any, keys: Keys, partitions: int) -> None:
        self._redis = redis
        self._queries = queries
        self._keys = keys
        self._partitions = partitions
        self._last: Reading | None = None
        self._lock = asyncio.Lock()

    async def read(self, *, max_age_s: float = CACHE_S) -> Reading:
        """A reading no older than ``max_age_s`` (one refresh at a time)."""
        async with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last.taken_at > max_age_s:
                self._last = await self._refresh(now)
            return self._last

    async def _refresh(self, taken_at: float) -> Reading:
        parts = range(self._partitions)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def checkpoint(p: int) -> str | None:
            async with gate:
                result: str | None = await self._queries.checkpoint(p)
                return result

        checkpoints = await asyncio.gather(*(checkpoint(p) for p in parts))
        async with self._redis.pipeline(transaction=False) as pipe:
            for p, ckpt in zip(parts, checkpoints, strict=True):
                start = f"({ckpt}" if ckpt else "-"
                pipe.xrange(self._keys.stream(p), min=start, max="+", count=1)
                pipe.xlen(self._keys.dead_letters(p))
                pipe.xlen(self._keys.stream(p))
                pipe.hget(self._keys.archive_state(p), "blocked_by")
            replies = await pipe.execute()
        now_ms = time.time() * 1000
        lag: dict[int, float] = {}
        dead: dict[int, int] = {}
        retained: dict[int, int] = {}
        blocked: dict[int, str] = {}
        for p in parts:
            pending, dead_count, length, by = replies[4 * p: 4 * p + 4]
            lag[p] = max(0.0, (now_ms - _ms(pending[0][0])) / 1000) if pending else 0.0
            dead[p] = int(dead_count)
            retained[p] = int(length)
            if by is not None:
                blocked[p] = by.decode() if isinstance(by, bytes) else str(by)
        return Reading(lag, dead, taken_at, retained, blocked)
