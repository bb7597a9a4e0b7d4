"""kill -9 of a primary mid-load, publishing with the strongest durability: the replica
is promoted and everything recovers by itself — nothing acknowledged is lost, nothing
is applied twice, replay equals live, the scheduler fires each reminder once, and
signals flow again."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.verify import Verifier
from herald.streams.cluster_server import start_cluster
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated, NotificationScheduled
from herald.streams.keys import Keys
from herald.streams.producer import Producer, now_ms
from herald.streams.signals import SignalSubscriber
from tests.cluster.conftest import (
    Publisher,
    cluster_settings,
    inbox_ids,
    log_envelopes,
    partitions_on,
    until,
)
from tests.consumers.helpers import reap, spawn_worker, wait_projected

USERS = tuple(f"u{i:02d}" for i in range(24))
KILL_AFTER = 150  # acknowledged events before the kill
EVENTS = 600


@pytest.mark.slow
async def test_kill_9_of_a_primary_loses_nothing_acknowledged(
        tmp_path: Path, worker_logs: Path) -> None:
    with start_cluster(tmp_path / "cluster", masters=3, replicas=1, appendfsync="always",
                       die_with_parent=True) as cluster:
        cfg = cluster_settings(cluster.url, tmp_path, publish_durability="fsync",
                               publish_replicas=1, publish_wait_s=0.5)
        keys = Keys(cfg.prefix)
        redis = connect(cfg)
        producer = Producer(redis, cfg)
        publisher = Publisher(producer, USERS)
        signals: list[tuple[float, dict[str, Any]]] = []
        subscriber = SignalSubscriber(
            redis, lambda _channel, data: signals.append((time.monotonic(), orjson.loads(data))))
        worker = spawn_worker(cfg, worker_logs / "worker.log", "--roles", "projector,scheduler")
        try:
            await subscriber.subscribe(keys.signal_channel(p) for p in range(cfg.partitions))
            victim = max(cluster.primaries(), key=lambda n: len(partitions_on(cluster, n)))
            affected = partitions_on(cluster, victim)
            assert affected
            # Reminders falling due around the kill, some on the victim's partitions.
            start = now_ms()
            reminders = [await publisher.publish([publisher.envelope(NotificationScheduled(
                title=f"reminder {i}", deliver_at=start + 1500 + 700 * i))])
                for i in range(8)]
            load = asyncio.create_task(publisher.run(EVENTS, 60))
            await until(lambda: _true(len(publisher.acked) >= KILL_AFTER or load.done()), 30)
            assert not load.done(), "the load ended before the kill"
            # An fsync publish takes milliseconds, not the second a replica's periodic
            # acknowledgement takes (streams/durability.py: WAIT before WAITAOF).
            assert statistics.median(publisher.latencies) < 0.3, publisher.latencies[:20]
            cluster.kill(victim)
            killed_at = time.monotonic()
            survivors = [n for n in cluster.nodes if n is not victim]

            async def promoted() -> bool:
                primaries = await asyncio.to_thread(cluster.primaries)
                return len(primaries) == 3 and all(n in survivors for n in primaries)

            await until(promoted, 30, every=0.1)
            await asyncio.to_thread(cluster.wait_ok, 30)
            failover_s = time.monotonic() - killed_at
            # The dead node comes back (as a supervisor would start it) and rejoins as
            # the new primary's replica: without one, fsync durability cannot be met
            # for its partitions, and those publishes are refused, not acknowledged.
            await asyncio.to_thread(cluster.restart, victim)
            await asyncio.to_thread(cluster.wait_ok, 30)
            await asyncio.wait_for(load, 90)
            assert not load.exception()
            assert publisher.retries > 0, "no publish met the failover"

            # Signals flow again on an affected partition, from a publish after it all.
            user = next(u for u in USERS if producer.partition(u) in affected)
            after = await publisher.publish([publisher.envelope(user=user)])
            seen = await until(lambda: _true(any(
                m["users"].get(user) == after[0].position for _t, m in signals)), 15)
            print(f"failover {failover_s:.1f}s; retries {publisher.retries} "
                  f"{dict(publisher.errors)}; signal after {seen:.2f}s")

            queries = InboxQueries(redis, cfg)
            await wait_projected(queries, publisher.last_positions(), timeout=60)
            fired = {r[0].id for r in reminders}
            await until(lambda: _fired(queries, publisher, fired), 30)

            # Every acknowledged publish is in the log once, and in its inbox once.
            log = await log_envelopes(redis, cfg)
            per_id = Counter(e.id for e in log)
            assert [i for i in publisher.acked if per_id[i] != 1] == []
            assert [i for i, n in per_id.items() if n > 1] == []
            fires = Counter(e.payload.notification_id for e in log
                            if isinstance(e.payload, NotificationCreated)
                            and e.payload.notification_id in fired)
            assert fires == dict.fromkeys(fired, 1)  # each reminder fired once
            for u in USERS:
                ids = await inbox_ids(queries, u)
                assert len(ids) == len(set(ids)), u
                assert set(ids) == publisher.ids_of(u), u
            for p in range(cfg.partitions):
                pending = await redis.xpending(keys.stream(p), GROUP)
                assert pending["pending"] == 0, p
            report = await Verifier(redis, cfg).run()
            assert report.identical, report.differences[:5]
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(15) == 0
        finally:
            reap(worker)
            await subscriber.stop()
            await redis.aclose()


async def _true(value: bool) -> bool:
    return value


async def _fired(queries: InboxQueries, publisher: Publisher, reminders: set[str]) -> bool:
    """Each reminder is an item of its user's inbox."""
    for nid in reminders:
        if await queries.item(publisher.user_of[nid], nid) is None:
            return False
    return True
