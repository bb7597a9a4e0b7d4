"""kill -9 of a worker subprocess mid-stream: a restarted worker ends exactly right."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.verify import Verifier
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.helpers import (
    inbox_state,
    model_state,
    reap,
    spawn_worker,
    wait_projected,
)
from tests.consumers.helpers.model import InboxModel
from tests.consumers.helpers.scenario import Materializer, random_ops

USERS = tuple(f"k{i}" for i in range(12))


async def test_kill_9_mid_stream_then_restart_equals_the_model(
    redis: Any, settings: Settings, tmp_path: Path
) -> None:
    cfg = settings.replace(partitions=4, read_batch=20, lease_ttl_s=1.0, inbox_max=40)
    producer, queries, keys = Producer(redis, cfg), InboxQueries(redis, cfg), Keys(cfg.prefix)
    model, mat = InboxModel(cfg.inbox_max), Materializer(producer)
    ops = random_ops(random.Random(7), 6000, USERS)
    appended = []
    for start in range(0, len(ops), 500):
        envs = [mat.envelope(op) for op in ops[start : start + 500]]
        for env, a in zip(envs, await producer.publish_many(envs), strict=True):
            mat.appended(a.position)
            model.apply(env, a.position)
            appended.append(a)
    first = spawn_worker(cfg, tmp_path / "first.log", "--roles", "projector")
    second = None
    try:
        deadline = time.monotonic() + 30
        while not any([await queries.checkpoint(p) for p in range(cfg.partitions)]):
            assert time.monotonic() < deadline, "the first worker never projected"
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        done = [await queries.checkpoint(p) for p in range(cfg.partitions)]
        last = {a.partition: a.position for a in appended}
        assert any(done[p] != last[p] for p in last), "killed too late to be mid-stream"
        second = spawn_worker(cfg, tmp_path / "second.log", "--roles", "projector")
        await wait_projected(queries, appended, timeout=60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
        for p in range(cfg.partitions):
            assert (await redis.xpending(keys.stream(p), "projector"))["pending"] == 0
        assert await inbox_state(queries, USERS) == model_state(model, USERS)
        report = await Verifier(redis, cfg).run()
        assert report.identical, report.differences[:5]
    finally:
        reap(first, *([second] if second else []))
