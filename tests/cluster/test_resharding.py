"""Slots move between primaries while events are published and projected: nothing is
lost, nothing is appended or applied twice, and the moved partitions keep being
consumed on their new primary."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.verify import Verifier
from herald.streams import positions
from herald.streams.cluster_server import start_cluster
from herald.streams.connection import TRANSIENT_ERRORS, connect
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from tests.cluster.conftest import (
    Publisher,
    cluster_settings,
    inbox_ids,
    log_envelopes,
    partitions_on,
    slot_of,
)
from tests.consumers.helpers import reap, spawn_worker, wait_projected

USERS = tuple(f"u{i:02d}" for i in range(24))


@pytest.mark.slow
async def test_moving_slots_under_traffic_loses_and_repeats_nothing(
        tmp_path: Path, worker_logs: Path) -> None:
    with start_cluster(tmp_path / "cluster", masters=3, replicas=0,
                       die_with_parent=True) as cluster:
        cfg = cluster_settings(cluster.url, tmp_path)
        keys = Keys(cfg.prefix)
        redis = connect(cfg)
        producer = Producer(redis, cfg)
        publisher = Publisher(producer, USERS)
        queries = InboxQueries(redis, cfg)
        worker = spawn_worker(cfg, worker_logs / "worker.log", "--roles", "projector")
        samples: dict[int, list[str]] = defaultdict(list)  # partition → checkpoints seen
        try:
            # The primary serving two partitions moves the slot range between them.
            primaries = cluster.primaries()
            source = next(n for n in primaries if len(partitions_on(cluster, n)) >= 2)
            target = next(n for n in primaries if n is not source)
            moved = partitions_on(cluster, source)[:2]
            first, last = sorted(slot_of(p) for p in moved)
            await publisher.run(120, 20)
            await wait_projected(queries, publisher.last_positions(), timeout=30)

            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample(queries, cfg.partitions, samples, stop))
            writer = asyncio.create_task(publisher.run(publisher.sent + 400, 30, pause_s=0.01))
            before, started = len(publisher.acked), time.monotonic()
            keys_moved = await asyncio.to_thread(cluster.move_slots,
                                                 range(first, last + 1), target)
            during = len(publisher.acked) - before
            print(f"moved {keys_moved} keys in {time.monotonic() - started:.2f}s while "
                  f"{during} events were acknowledged; {dict(publisher.errors)}")
            await writer
            stop.set()
            await sampler
            assert keys_moved > 0 and during > 0, (keys_moved, during)
            owners = cluster.slot_owners()
            assert {owners[s].port for s in range(first, last + 1)} == {target.port}
            assert set(partitions_on(cluster, target)) >= set(moved)

            # The moved partitions are consumed on their new primary.
            users = [u for u in USERS if producer.partition(u) in moved]
            after = await publisher.publish([publisher.envelope(user=u) for u in users])
            await wait_projected(queries, after, timeout=15)
            await wait_projected(queries, publisher.last_positions(), timeout=30)

            log = await log_envelopes(redis, cfg)
            per_id = Counter(e.id for e in log)
            assert sorted(per_id) == sorted(publisher.acked)  # all there, nothing else
            assert [i for i, n in per_id.items() if n > 1] == []
            for u in USERS:
                assert sorted(await inbox_ids(queries, u)) == sorted(publisher.ids_of(u)), u
            for p in range(cfg.partitions):
                seen = [positions.parse(c) for c in samples[p]]
                assert seen == sorted(seen), f"checkpoint of {p} went back"
                last_entry = await redis.xrevrange(keys.stream(p), count=1)
                assert await queries.checkpoint(p) == last_entry[0][0].decode()
                assert (await redis.xpending(keys.stream(p), GROUP))["pending"] == 0
            assert all(samples[p] for p in moved)
            report = await Verifier(redis, cfg).run()
            assert report.identical, report.differences[:5]
            assert worker.poll() is None, "the worker died"
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0
        finally:
            reap(worker)
            await redis.aclose()



async def _sample(queries: InboxQueries, partitions: int, samples: dict[int, list[str]],
                  stop: asyncio.Event) -> None:
    """Every partition's checkpoint, every 20 ms until ``stop`` (a read that meets the
    move is skipped)."""
    while not stop.is_set():
        for p in range(partitions):
            try:
                value = await queries.checkpoint(p)
            except TRANSIENT_ERRORS:
                continue
            if value is not None:
                samples[p].append(value)
        await asyncio.sleep(0.02)
