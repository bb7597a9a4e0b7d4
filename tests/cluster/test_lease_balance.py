"""Three `herald worker --roles projector` processes on the cluster share the partitions
evenly; a kill -9 of one moves its partitions to the others within a lease TTL, and
every event published meanwhile is projected."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from pathlib import Path

import pytest

from herald.consumers.group.lease import LEASE_CYCLE_MAX_S
from herald.consumers.projection.queries import InboxQueries
from herald.streams.cluster_server import ClusterHandle
from herald.streams.connection import connect
from herald.streams.producer import Producer
from tests.cluster.conftest import (
    LEASE_TTL_S,
    Publisher,
    cluster_settings,
    counts,
    inbox_ids,
    lease_owners,
    until,
)
from tests.consumers.helpers import reap, spawn_worker, wait_projected

USERS = tuple(f"u{i:02d}" for i in range(24))
CYCLE_S = min(LEASE_TTL_S / 3, LEASE_CYCLE_MAX_S)
SLACK_S = 1.5  # process scheduling on a loaded 2-core machine


@pytest.mark.slow
async def test_leases_spread_and_move_when_a_worker_dies(
        redis_cluster: ClusterHandle, tmp_path: Path, worker_logs: Path) -> None:
    cfg = cluster_settings(redis_cluster.url, tmp_path)
    p = cfg.partitions
    redis = connect(cfg)
    publisher = Publisher(Producer(redis, cfg), USERS)
    workers = [spawn_worker(cfg, worker_logs / f"w{i}.log", "--roles", "projector")
               for i in range(3)]
    pids = {w.pid for w in workers}
    try:
        await publisher.run(48, 10)

        async def balanced(members: set[int], bound: int) -> bool:
            owners = await lease_owners(redis, cfg)
            per = counts(owners)
            return (None not in owners.values() and set(per) == members
                    and max(per.values()) <= bound)

        three = math.ceil(p / 3) + 1
        await until(lambda: balanced(pids, three), 30)
        for _ in range(10):  # and it stays so, cycle after cycle
            assert await balanced(pids, three), await lease_owners(redis, cfg)
            await asyncio.sleep(CYCLE_S / 2)

        writer = asyncio.create_task(publisher.run(publisher.sent + 200, 20, pause_s=0.03))
        owners = await lease_owners(redis, cfg)
        victim = max(workers, key=lambda w: counts(owners)[w.pid])
        orphaned = [q for q, pid in owners.items() if pid == victim.pid]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        survivors = pids - {victim.pid}

        async def taken_over() -> bool:
            owners = await lease_owners(redis, cfg)
            return all(owners[q] in survivors for q in orphaned)

        moved_s = await until(taken_over, LEASE_TTL_S + 10, every=0.02)
        print(f"partitions of the killed worker taken over in {moved_s:.2f}s")
        assert moved_s <= LEASE_TTL_S + CYCLE_S + SLACK_S, f"took {moved_s:.2f}s"
        two = math.ceil(p / 2) + 1
        await until(lambda: balanced(survivors, two), 10)
        await writer
        assert time.monotonic() - killed_at > 1, "the writer did not overlap the takeover"

        queries = InboxQueries(redis, cfg)
        await wait_projected(queries, publisher.last_positions(), timeout=30)
        for user in USERS:
            ids = await inbox_ids(queries, user)
            assert sorted(ids) == sorted(publisher.ids_of(user)), user
        for w in workers:
            if w is not victim:
                w.send_signal(signal.SIGTERM)
        assert [w.wait(15) for w in workers if w is not victim] == [0, 0]
    finally:
        reap(*workers)
        await redis.aclose()

