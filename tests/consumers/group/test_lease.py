"""Leases: one owner per partition, takeover within the TTL when the owner dies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from herald.consumers.group.lease import Leases
from herald.consumers.projection.queries import InboxQueries
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.helpers import reap, spawn_worker


async def test_concurrent_takers_get_one_lease(redis: Any, settings: Settings) -> None:
    clients = [connect(settings) for _ in range(6)]
    try:
        leases = [Leases(c, settings, "projector", f"c{i}", [0]) for i, c in enumerate(clients)]
        results = await asyncio.gather(*(lease.hold([0]) for lease in leases))
        winners = [i for i, r in enumerate(results) if r[0][0]]
        assert len(winners) == 1
        assert (await redis.get(Keys(settings.prefix).lease("projector", 0))).decode() == \
            f"c{winners[0]}"
        loser = leases[(winners[0] + 1) % 6]
        held, left = (await loser.hold([0]))[0]
        assert not held and 0 < left <= int(settings.lease_ttl_s * 1000)
        await loser.release([0])  # not the loser's to release
        assert await redis.exists(Keys(settings.prefix).lease("projector", 0))
    finally:
        for c in clients:
            await c.aclose()


def _owner_pid(value: bytes | None) -> int | None:
    return None if value is None else int(value.decode().split(":")[1])


async def test_two_processes_race_one_owner_then_takeover(
    redis: Any, settings: Settings, tmp_path: Any
) -> None:
    settings = settings.replace(partitions=1, lease_ttl_s=1.0)
    lease_key = Keys(settings.prefix).lease("projector", 0)
    procs = [spawn_worker(settings, tmp_path / f"w{i}.log", "--roles", "projector")
             for i in range(2)]
    try:
        deadline = time.monotonic() + 20
        while await redis.zcard(Keys(settings.prefix).members("projector")) < 2:
            assert time.monotonic() < deadline, "workers did not start"
            await asyncio.sleep(0.05)
        owners = set()
        for _ in range(30):  # 1.5 s of samples: always exactly one, always the same
            owners.add(_owner_pid(await redis.get(lease_key)))
            await asyncio.sleep(0.05)
        assert len(owners) == 1
        owner = owners.pop()
        assert owner in {p.pid for p in procs}
        survivor = next(p for p in procs if p.pid != owner)
        os.kill(owner, signal.SIGKILL)
        killed_at = time.monotonic()
        while _owner_pid(await redis.get(lease_key)) != survivor.pid:
            assert time.monotonic() - killed_at < settings.lease_ttl_s + 0.5, "no takeover"
            await asyncio.sleep(0.01)
        assert time.monotonic() - killed_at <= settings.lease_ttl_s + 0.5
        producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
        appended = await producer.publish(producer.envelope("u", NotificationCreated(title="x")))
        assert await queries.wait_for(0, appended.position, 5)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(10) == 0  # graceful: batch finished, lease released
        assert not await redis.exists(lease_key)
    finally:
        reap(*procs)
