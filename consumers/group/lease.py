"""Partition leases: at most one active consumer per (group, partition).

A lease is a string key ``Keys.lease(group, p)`` holding the owner's consumer name
with a PX TTL (``HERALD_LEASE_TTL``). The owner renews it every cycle (a third of
the TTL, at most :data:`LEASE_CYCLE_MAX_S`); a consumer that dies or stops renewing
loses it when the TTL runs out, and a live consumer takes the partition over at
that moment (it schedules a wake-up at the other lease's expiry).

Balance: live consumers heartbeat into ``Keys.members(group)`` (a sorted set scored
by expiry); each aims at ``ceil(partitions / live members)`` leases, acquires free
partitions while below that share and gives surplus back (after finishing its batch)
while above it, so a second process takes half the partitions within a few cycles.

Guarantee: two consumers never both hold a lease (SET NX and compare-and-delete in
Lua). Holding a lease does not by itself stop a paused ex-owner from writing: the
writes that matter check the lease in the same script (fencing; see
consumers/projection/applier.py and consumers/group/lua/runtime_settle.lua).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consumers.aio import check_cancelled, sleep_unless
from herald.streams.connection import REDIS_ERRORS, Backoff
from herald.streams.keys import Keys
from herald.streams.scripts import register
from herald.streams.settings import Settings

LEASE_CYCLE_MAX_S = 5.0  # renew/rebalance at least this often (a third of the TTL if less)
WAKE_MARGIN_S = 0.02  # wake this long after another's lease should have expired


@dataclass(slots=True)
class LeaseChanges:
    """What one lease cycle found: partitions gained, lost, and over our share."""

    acquired: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    surplus: list[int] = field(default_factory=list)
    wake_in: float = LEASE_CYCLE_MAX_S


class Leases:
    """The leases one consumer holds for one group."""

    def __init__(
        self, redis: Any, settings: Settings, group: str, consumer: str,
        partitions: Sequence[int],
    ) -> None:
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.group = group
        self.consumer = consumer
        self.partitions = list(partitions)
        self.ttl_ms = max(1, int(settings.lease_ttl_s * 1000))
        self.cycle_s = min(settings.lease_ttl_s / 3, LEASE_CYCLE_MAX_S)
        self.owned: set[int] = set()
        self._hold = register(redis, __file__, "lease_hold")
        self._release = register(redis, __file__, "lease_release")

    def key(self, partition: int) -> str:
        return self.keys.lease(self.group, partition)

    async def hold(self, partitions: Sequence[int]) -> dict[int, tuple[bool, int]]:
        """Take or renew each lease: ``{p: (held, ms left on the holder's lease)}``."""
        if not partitions:
            return {}
        replies = _checked(await self._hold.many(
            [([self.key(p)], [self.consumer, self.ttl_ms]) for p in partitions]))
        return {p: (int(r[0]) == 1, int(r[1])) for p, r in zip(partitions, replies, strict=True)}

    async def release(self, partitions: Sequence[int]) -> None:
        """Give leases back (only those still ours) and forget them."""
        if not partitions:
            return
        _checked(await self._release.many([([self.key(p)], [self.consumer])
                                            for p in partitions]))
        self.owned.difference_update(partitions)

    async def heartbeat(self) -> int:
        """Mark this consumer alive for one TTL; the number of live members."""
        now = int(time.time() * 1000)
        key = self.keys.members(self.group)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.consumer: now + self.ttl_ms})
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zcard(key)
            replies = await pipe.execute()
        return max(1, int(replies[2]))

    async def leave(self) -> None:
        """Stop counting as a member (graceful stop)."""
        await self.redis.zrem(self.keys.members(self.group), self.consumer)

    def share(self, members: int) -> int:
        return math.ceil(len(self.partitions) / max(1, members))

    async def maintain(self, stop: asyncio.Event,
                       react: Callable[[LeaseChanges], Awaitable[None]], log: Any) -> None:
        """Run :meth:`cycle` until ``stop``, handing each cycle's changes to ``react``.

        Redis errors are logged (``lease_cycle_failed``) and retried after a back-off;
        meanwhile leases are neither renewed nor taken, so they may expire and be
        taken over (the fenced writes notice). Gains are logged as one line.
        """
        backoff = Backoff()
        while not stop.is_set():
            try:
                changes = await self.cycle()
                check_cancelled()  # redis-py may have swallowed a cancel (consumers/aio.py)
                if changes.acquired:  # one line per change, not one per partition
                    log.info("partitions_acquired", partitions=sorted(changes.acquired))
                await react(changes)
                backoff.reset()
                wait = changes.wake_in
            except REDIS_ERRORS as exc:
                wait = backoff.next()
                log.warning("lease_cycle_failed", error=str(exc), retry_in=wait)
            await sleep_unless(stop, wait)

    async def cycle(self) -> LeaseChanges:
        """Renew what we hold, take free partitions up to our share, report surplus."""
        changes = LeaseChanges(wake_in=self.cycle_s)
        members = await self.heartbeat()
        share = self.share(members)
        renewed = await self.hold(sorted(self.owned))
        for p, (held, _left) in renewed.items():
            if not held:
                changes.lost.append(p)
                self.owned.discard(p)
        if len(self.owned) > share:
            changes.surplus = sorted(self.owned)[share:]
        others = [p for p in self.partitions if p not in self.owned]
        if others and len(self.owned) < share:
            random.shuffle(others)  # spread concurrent takers over different partitions
            free = await self._free(others)
            wanted = free[: share - len(self.owned)]
            taken = await self.hold(wanted)
            for p, (held, left) in taken.items():
                if held:
                    self.owned.add(p)
                    changes.acquired.append(p)
                elif left > 0:
                    changes.wake_in = min(changes.wake_in, left / 1000 + WAKE_MARGIN_S)
            soonest = await self._soonest_expiry([p for p in others if p not in free])
            if soonest is not None:
                changes.wake_in = min(changes.wake_in, soonest + WAKE_MARGIN_S)
        return changes

    async def _free(self, partitions: Sequence[int]) -> list[int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.exists(self.key(p))
            replies = await pipe.execute()
        return [p for p, exists in zip(partitions, replies, strict=True) if not exists]

    async def _soonest_expiry(self, partitions: Sequence[int]) -> float | None:
        """Seconds until the first of these (others') leases expires."""
        if not partitions:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.pttl(self.key(p))
            replies = await pipe.execute()
        left = [int(ms) for ms in replies if int(ms) >= 0]
        return min(left) / 1000 if left else 0.0


def _checked(replies: list[Any]) -> list[Any]:
    """The replies, or the first error reply raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
