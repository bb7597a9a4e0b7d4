"""A snapshot's image is whole or refused: no key without a value, no snapshot across a
server restart (what a power loss during a snapshot looked like in the chaos suite)."""

from __future__ import annotations

from typing import Any

import pytest

from herald.consumers.errors import RetentionError
from herald.consumers.retention import image
from herald.consumers.retention.role import Retention
from herald.consumers.retention.snapshotter import drop_scratch
from herald.streams.durability import run_id
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.consumers.helpers.harness import Harness


async def test_load_refuses_a_record_without_a_value(redis: Any, settings: Settings) -> None:
    """0.5 wrote such records when a key vanished between the dump's two round trips
    (the server restarted mid-dump): loading one would rebuild a partition without its
    inbox and checkpoint, so it is refused, and nothing of it is written."""
    keys = Keys(settings.prefix)
    records = [["inbox:u1", "zset", [[b"m", 1.0]], None], ["inbox:u2", "zset", None, None],
               [image.CHECKPOINT, "string", b"1-1", None]]
    with pytest.raises(RetentionError, match="without a value"):
        await image.load(redis, keys, 0, "scratch", records)
    assert await redis.exists(keys.ns_root(0, "scratch") + ":inbox:u1") == 0


async def test_dump_and_load_round_trip(redis: Any, settings: Settings) -> None:
    keys = Keys(settings.prefix)
    root = keys.ns_root(1, "a") + ":"
    await redis.zadd(root + "inbox:u1", {"m1": 1.0, "m2": 2.0})
    await redis.hset(root + "read:u1", mapping={"m1": "1"})
    await redis.set(root + image.CHECKPOINT, "5-0")
    records = await image.dump(redis, keys, 1, "a", [root + "inbox:u1", root + "read:u1",
                                                     root + image.CHECKPOINT, root + "gone"])
    assert sorted(r[0] for r in records) == sorted(["inbox:u1", "read:u1", image.CHECKPOINT])
    await image.load(redis, keys, 1, "b", records)
    other = keys.ns_root(1, "b") + ":"
    assert await redis.zrange(other + "inbox:u1", 0, -1, withscores=True) == [
        (b"m1", 1.0), (b"m2", 2.0)]
    assert await redis.get(other + image.CHECKPOINT) == b"5-0"


@pytest.mark.cluster
async def test_run_id_names_the_server_of_a_key(redis: Any, settings: Settings) -> None:
    """The snapshotter compares it before and after: a restart in between refuses the
    snapshot. Stable while the server runs; 40 hex digits."""
    key = Keys(settings.prefix).stream(2)
    first = await run_id(redis, key)
    assert len(first) == 40 and int(first, 16) >= 0
    assert await run_id(redis, key) == first


async def test_a_snapshot_whose_scratch_copy_was_dropped_is_refused(h: Harness) -> None:
    """A worker that takes the retention lease over drops every scratch namespace as a
    killed snapshotter's leftovers; the snapshotter it took over from may be alive and
    slow. Its image then lacks what was loaded from the previous snapshot (the chaos
    suite's worker and server kills found snapshots without the first inbox items)."""
    h.start_projector()
    for i in range(5):
        await h.publish("alice", NotificationCreated(title=f"a{i}"))
    await h.projected("alice")
    p = h.producer.partition("alice")
    retention = Retention(h.settings, h.redis)
    assert (await retention.step(p, force=True, trim=False)).snapshot is not None
    for i in range(5):
        await h.publish("alice", NotificationCreated(title=f"b{i}"))
    await h.projected("alice")
    snapshotter = retention.snapshotter
    build = snapshotter.builder.build

    async def taken_over(partition: int, ns: str, **kw: Any) -> Any:
        await drop_scratch(h.redis, h.keys.ns_registry(partition, ns))  # the other worker
        return await build(partition, ns, **kw)

    snapshotter.builder.build = taken_over  # type: ignore[method-assign]
    with pytest.raises(RetentionError, match="dropped the snapshot's scratch copy"):
        await snapshotter.snapshot(p)
    snapshotter.builder.build = build  # type: ignore[method-assign]
    report = await snapshotter.snapshot(p)
    assert report is not None
    records = await snapshotter.store.read(report.snapshot)
    [inbox] = [r for r in records if r[0] == "inbox:alice"]
    assert len(inbox[2]) == 10
