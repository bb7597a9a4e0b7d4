"""Property: whatever crashes, takeovers and redeliveries happen, the projection equals
an in-memory model of the rules, and equals a replay of the log.

Random event sequences for three users go through the real runtime while consumers
are killed (task cancel, between any two awaits: after a write and before its ack
included), leases are stolen (the owner's next fenced write fails, its pending
entries are redelivered to whoever takes over), and new consumers start.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.streams.connection import connect
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from tests.consumers.helpers import (
    REGISTRY_KINDS,
    inbox_state,
    make_settings,
    model_state,
    registry_state,
    start_projector,
    wait_projected,
)
from tests.consumers.helpers.model import InboxModel
from tests.consumers.helpers.scenario import USERS, Materializer, Op, ops_strategy

chaos_strategy = st.lists(
    st.tuples(st.sampled_from(["kill", "kill", "steal", "start"]), st.floats(0.0, 0.08)),
    max_size=6,
)


async def scenario(redis_url: str, ops: list[Op], chaos: list[tuple[str, float]],
                   rng: random.Random) -> None:
    cfg = make_settings(redis_url, partitions=2, inbox_max=4, lease_ttl_s=0.3, read_batch=3,
                        max_deliveries=1000)
    redis: Any = connect(cfg)
    producer, queries, keys = Producer(redis, cfg), InboxQueries(redis, cfg), Keys(cfg.prefix)
    model, mat = InboxModel(cfg.inbox_max), Materializer(producer)
    stop = asyncio.Event()
    live: list[tuple[GroupRuntime, asyncio.Task[None]]] = []
    dead: list[asyncio.Task[None]] = []
    try:
        live.append(start_projector(cfg, redis, stop, block_ms=20))

        async def publish() -> list[Any]:
            out = []
            for op in ops:
                env = mat.envelope(op)
                appended = await producer.publish(env)
                mat.appended(appended.position)
                model.apply(env, appended.position)
                out.append(appended)
                await asyncio.sleep(0)
            return out

        async def havoc() -> None:
            for action, delay in chaos:
                await asyncio.sleep(delay)
                if action == "kill" and live:
                    _, task = live.pop(rng.randrange(len(live)))
                    task.cancel()  # a crash: no ack, no release
                    dead.append(task)
                elif action == "steal":
                    await redis.set(keys.lease("projector", rng.randrange(cfg.partitions)),
                                    "thief", px=int(cfg.lease_ttl_s * 1000))
                if action == "start" or not live:
                    live.append(start_projector(cfg, redis, stop, block_ms=20))

        appended, _ = await asyncio.gather(publish(), havoc())
        await wait_projected(queries, appended, timeout=20)
        # A consumer killed after a write and before its ack leaves that entry pending
        # until its lease expires and a live one claims it (a no-op apply, then an ack).
        for _ in range(500):
            counts = [(await redis.xpending(keys.stream(p), "projector"))["pending"]
                      for p in range(cfg.partitions)]
            if not any(counts):
                break
            await asyncio.sleep(0.02)
        assert not any(counts), counts
        stop.set()
        await asyncio.gather(*(task for _, task in live))
        if dead:
            await asyncio.wait(dead, timeout=5)
        for task in dead:
            assert task.cancelled()

        expected = model_state(model, USERS)
        registry = model.registry.state(USERS, REGISTRY_KINDS)
        assert await inbox_state(queries, USERS) == expected
        assert await registry_state(redis, cfg, USERS) == registry
        report = await Verifier(redis, cfg).run()
        assert report.identical, report.differences
        await Replay(redis, cfg).run()
        assert await inbox_state(queries, USERS) == expected
        assert await registry_state(redis, cfg, USERS) == registry
    finally:
        stop.set()
        for _, task in live:
            task.cancel()
        await asyncio.gather(*(t for _, t in live), *dead, return_exceptions=True)
        await redis.aclose()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=ops_strategy, chaos=chaos_strategy, rng=st.randoms(use_true_random=False))
def test_projection_equals_model_and_replay_despite_crashes(
    redis_url: str, ops: list[Op], chaos: list[tuple[str, float]], rng: random.Random
) -> None:
    asyncio.run(scenario(redis_url, ops, chaos, rng))
