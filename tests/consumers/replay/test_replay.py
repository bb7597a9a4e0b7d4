"""Replay: a fresh namespace, an atomic switch under live traffic, resumable; verify."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from herald.consumers.errors import ReplayError
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.builder import BuildStats
from herald.consumers.replay.rebuild import Replay, replay_lock
from herald.consumers.replay.verify import Verifier
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.helpers import inbox_state, model_state, start_projector, wait_projected
from tests.consumers.helpers.model import InboxModel
from tests.consumers.helpers.scenario import USERS, Materializer, random_ops


class Live:
    """A running projector plus a publisher that keeps the model in step."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis, self.settings = redis, settings.replace(inbox_max=6)
        self.producer = Producer(redis, self.settings)
        self.queries = InboxQueries(redis, self.settings)
        self.model = InboxModel(self.settings.inbox_max)
        self.mat = Materializer(self.producer)
        self.appended: list[Any] = []
        self.stop = asyncio.Event()
        self.rng = random.Random(3)

    async def publish(self, count: int) -> None:
        for op in random_ops(self.rng, count, USERS):
            env = self.mat.envelope(op)
            a = await self.producer.publish(env)
            self.mat.appended(a.position)
            self.model.apply(env, a.position)
            self.appended.append(a)

    async def check(self) -> None:
        await wait_projected(self.queries, self.appended)
        assert await inbox_state(self.queries, USERS) == model_state(self.model, USERS)


@pytest.fixture
async def live(redis: Any, settings: Settings) -> Any:
    world = Live(redis, settings)
    _, task = start_projector(world.settings, redis, world.stop)
    yield world
    world.stop.set()
    await task


@pytest.mark.cluster
async def test_replay_switches_atomically_under_live_traffic(live: Live, redis: Any) -> None:
    await live.publish(150)
    await wait_projected(live.queries, live.appended)
    writer = asyncio.create_task(live.publish(150))
    report = await Replay(redis, live.settings).run()
    await writer
    keys = Keys(live.settings.prefix)
    assert report.ns.startswith("r") and not report.resumed and report.stats.entries >= 150
    for p in range(live.settings.partitions):
        assert (await redis.get(keys.partition_view(p))).decode() == report.ns
    assert (await redis.get(keys.view_pointer())).decode() == report.ns
    assert [k async for k in redis.scan_iter(match=keys.ns_pattern(LIVE_NS))] == []
    assert not await redis.exists(keys.replay_state())
    await live.check()  # the projector moved to the new namespace by itself
    assert (await Verifier(redis, live.settings).run()).identical


class Interrupt(Exception):
    """Raised by a progress callback to cut a replay short, like Ctrl-C would."""


async def test_replay_resumes_after_an_interruption(live: Live, redis: Any) -> None:
    await live.publish(300)
    await wait_projected(live.queries, live.appended)
    seen = 0

    def progress(n: int) -> None:
        nonlocal seen
        seen += n
        if seen > 100:
            raise Interrupt

    with pytest.raises(Interrupt):
        await Replay(redis, live.settings, progress=progress).run()
    keys = Keys(live.settings.prefix)
    state = await redis.hgetall(keys.replay_state())
    assert b"ns" in state and not await redis.exists(keys.replay_lock())
    assert await redis.get(keys.partition_view(0)) is None  # still live on "v"
    await live.check()  # the interrupted build is invisible
    report = await Replay(redis, live.settings).run()
    assert report.resumed and report.ns == state[b"ns"].decode()
    assert report.stats.entries < 300  # it continued, it did not start over
    await live.publish(20)
    await live.check()
    assert (await Verifier(redis, live.settings).run()).identical


@pytest.mark.cluster
async def test_verify_prints_each_difference(live: Live, redis: Any) -> None:
    await live.publish(60)
    await live.check()
    report = await Verifier(redis, live.settings).run()
    assert report.identical and report.compared_keys > 0
    keys, s = Keys(live.settings.prefix), live.settings
    item = (await live.queries.page("u0")).items[0]
    p = live.producer.partition("u0")
    await redis.hset(keys.item(p, item["id"]), "t", "tampered")
    await redis.set(keys.ns_root(p) + ":stray", "x")
    p1 = live.producer.partition("用户 1")
    await redis.delete(keys.user_state(p1, "用户 1"))
    report = await Verifier(redis, s).run()
    text = "\n".join(report.differences)
    assert len(report.differences) == 3, text
    assert f"item:{item['id']}: field 't': live=b'tampered'" in text
    assert "stray: only in live" in text
    assert "user:用户 1: only in replay" in text
    assert [k async for k in redis.scan_iter(match=keys.ns_pattern("scratch"))] == []


async def test_one_replay_at_a_time(redis: Any, settings: Settings) -> None:
    async with replay_lock(redis, Keys(settings.prefix)):
        with pytest.raises(ReplayError, match="another"):
            await Replay(redis, settings).run()


async def test_replay_of_an_empty_log_and_one_partition(redis: Any, settings: Settings) -> None:
    report = await Replay(redis, settings).run([2])
    assert report.stats.entries == 0
    keys = Keys(settings.prefix)
    assert (await redis.get(keys.partition_view(2))).decode() == report.ns
    assert await redis.get(keys.partition_view(1)) is None
    assert await redis.get(keys.view_pointer()) is None  # only set by a full replay


async def test_switch_catches_up_when_live_is_ahead(live: Live, redis: Any) -> None:
    """The switch refuses while the rebuild is behind live, and the replay catches up."""
    await live.publish(40)
    await wait_projected(live.queries, live.appended)
    replay = Replay(redis, live.settings)
    p = live.appended[0].partition
    mine = [a.position for a in live.appended if a.partition == p]
    await replay.builder.build(p, "rtest", until=mine[len(mine) // 2])
    keys = Keys(live.settings.prefix)
    reply = await replay._switch(
        keys=[keys.partition_view(p), keys.checkpoint(p, LIVE_NS, "projector"),
              keys.checkpoint(p, "rtest", "projector")], args=[LIVE_NS, "rtest", LIVE_NS])
    assert reply == [b"behind", mine[-1].encode()]
    await replay._switch_partition(p, LIVE_NS, "rtest", BuildStats())
    assert (await redis.get(keys.partition_view(p))).decode() == "rtest"
    assert await live.queries.checkpoint(p) == mine[-1]
    await live.publish(10)
    await live.check()


def test_xrange_rows_become_entries_raw_or_parsed() -> None:
    """Raw XRANGE replies (a Batch) and redis-py's parsed ones (Cluster) read alike."""
    from herald.consumers.group.handler import entries_of as _entries

    rows = [(b"1-1", [b"e", b"one"]), (b"1-2", [b"x", b"?", b"e", b"two"]), (b"1-3", []),
            (b"1-4", {b"e": b"four"})]
    entries = _entries(rows)
    assert [(e.position, e.raw) for e in entries] == [
        ("1-1", b"one"), ("1-2", None), ("1-3", None), ("1-4", b"four")]
    # An entry of other fields than the one `e` is not guessed at: the runtime
    # dead-letters it with this reason (a deleted entry has none: it is acked).
    assert [e.problem for e in entries] == [
        None, "malformed: the entry has fields besides 'e' (its fields: 'x', 'e')", None, None]
