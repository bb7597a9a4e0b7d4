"""Property: snapshots, archiving and trimming at random moments — some in a process
killed with SIGKILL part-way — never change what the log says: live equals an
in-memory model, replay from the newest snapshot and replay from the start equal it
too, and the archive plus the stream hold every appended entry exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.consumers.retention.role import Retention
from herald.streams.archive import LogReader, SegmentStore, open_storage
from herald.streams.connection import connect
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from tests.consumers.helpers import (
    REPO,
    inbox_state,
    make_settings,
    model_state,
    start_projector,
    wait_projected,
    worker_env,
)
from tests.consumers.helpers.model import InboxModel
from tests.consumers.helpers.scenario import USERS, Materializer, Op, ops_strategy

# After which op, and how: in this process, or `herald snapshot` killed after a delay.
retention_strategy = st.lists(
    st.tuples(st.integers(0, 44), st.one_of(st.none(), st.floats(0.3, 1.6))), max_size=3)


async def scenario(redis_url: str, folder: Path, ops: list[Op],
                   steps: list[tuple[int, float | None]], rng: random.Random) -> None:
    cfg = make_settings(redis_url, folder, partitions=2, inbox_max=4, read_batch=3)
    redis: Any = connect(cfg)
    producer, queries, keys = Producer(redis, cfg), InboxQueries(redis, cfg), Keys(cfg.prefix)
    model, mat = InboxModel(cfg.inbox_max), Materializer(producer)
    stop = asyncio.Event()
    _, projector = start_projector(cfg, redis, stop, block_ms=20)
    retention = Retention(cfg, redis)
    killed = []
    try:
        appended = []
        at = {index % len(ops): how for index, how in steps}
        for index, op in enumerate(ops):
            env = mat.envelope(op)
            result = await producer.publish(env)
            mat.appended(result.position)
            model.apply(env, result.position)
            appended.append(result)
            if index not in at:
                continue
            await wait_projected(queries, appended)
            how = at[index]
            if how is None:
                await retention.step(rng.randrange(cfg.partitions), force=True)
            else:  # the whole CLI in a process of its own, SIGKILLed part-way (or not)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "herald.cli", "snapshot", cwd=REPO,
                    env=worker_env(cfg), stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL)
                try:
                    await asyncio.wait_for(proc.wait(), how)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):  # it may end right then
                        proc.kill()
                    killed.append(await proc.wait())
        await wait_projected(queries, appended)
        await retention.drop_scratch(list(range(cfg.partitions)))  # what a killed one left
        for p in range(cfg.partitions):  # finish whatever a killed process left half-done
            await retention.step(p, force=True)

        expected = model_state(model, USERS)
        assert await inbox_state(queries, USERS) == expected
        reader = LogReader(redis, keys, SegmentStore(open_storage(cfg.archive_location)))
        for p in range(cfg.partitions):
            seen = [pos async for chunk in reader.chunks(p, None, None) for pos, _ in chunk]
            assert seen == [a.position for a in appended if a.partition == p]
        for from_start in (False, True):
            report = await Verifier(redis, cfg, from_start=from_start).run()
            assert report.identical, report.differences
        await Replay(redis, cfg).run()
        assert await inbox_state(queries, USERS) == expected
        await Replay(redis, cfg, from_start=True).run()
        assert await inbox_state(queries, USERS) == expected
        leftovers = await redis.keys(f"{cfg.prefix}:*registry*")
        assert leftovers == []
        assert all(code in (-9, 0) for code in killed)  # SIGKILLed (or just done)
    finally:
        stop.set()
        await asyncio.wait_for(projector, 10)
        await redis.aclose()


@pytest.mark.slow
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=ops_strategy, steps=retention_strategy, rng=st.randoms(use_true_random=False))
def test_retention_at_random_moments_changes_nothing_the_log_says(
    redis_url: str, ops: list[Op], steps: list[tuple[int, float | None]], rng: random.Random
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(redis_url, Path(folder), ops, steps, rng))
