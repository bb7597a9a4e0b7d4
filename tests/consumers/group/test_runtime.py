"""The consumer-group runtime against a real server: recovery, dead letters, leases."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgpack
import pytest
import redis.exceptions as redis_exceptions

from herald.consumers.errors import GroupMissingError
from herald.consumers.group import runtime as runtime_module
from herald.consumers.group.dead_letters import DeadLetters
from herald.consumers.group.handler import DeadLetter, Entry, Outcome
from herald.consumers.group.lease import Leases
from herald.consumers.group.reads import StreamGroup
from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.applier import Preparer
from herald.consumers.projection.projector import ProjectorHandler, projector_factory
from herald.consumers.projection.queries import InboxQueries
from herald.streams import codec, events
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated, NotificationRead
from herald.streams.keys import Keys
from herald.streams.producer import Producer, _Base
from herald.streams.settings import Settings
from tests.consumers.helpers import start_projector, wait_projected


async def _stop(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.gather(*tasks)


async def test_group_created_after_events_exist_projects_them_all(
    redis: Any, settings: Settings
) -> None:
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    appended = await producer.publish_many(
        [producer.envelope(f"u{i % 5}", NotificationCreated(title=f"n{i}")) for i in range(40)]
    )
    assert not await redis.exists(Keys(settings.prefix).lease("projector", 0))
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    await wait_projected(queries, appended)
    assert sum([await queries.unread_count(f"u{i}") for i in range(5)]) == 40
    await _stop(stop, task)


async def test_poison_entries_are_dead_lettered_and_retried_after_a_fix(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    keys = Keys(settings.prefix)
    p = producer.partition("alice")
    good = producer.envelope("alice", NotificationCreated(title="fine"))
    doc = msgpack.unpackb(codec.encode(good))
    future = producer.envelope("alice", NotificationCreated(title="from the future"))
    v2 = msgpack.unpackb(codec.encode(future))
    v2["v"] = 2
    unknown_type = dict(doc, t="notification.teleported", i=future.id)
    for raw in (b"\x00garbage", msgpack.packb(unknown_type), msgpack.packb(v2)):
        await redis.xadd(keys.stream(p), {b"e": raw})
    last = await producer.publish(good)
    stop = asyncio.Event()
    runtime, task = start_projector(settings, redis, stop)
    assert await queries.wait_for(p, last.position, 10)
    letters = await runtime.dead_letters.letters([p])
    assert [x.reason.split(":")[0] for x in letters] == ["malformed", "unknown_type",
                                                         "unknown_version"]
    assert letters[0].raw == b"\x00garbage"  # the original bytes, untouched
    assert [i["title"] for i in (await queries.page("alice")).items] == ["fine"]
    assert (await redis.xpending(keys.stream(p), "projector"))["pending"] == 0

    # The fix: version 2 of notification.created becomes known (same fields).
    class CreatedV2(NotificationCreated):
        VERSION = 2

    monkeypatch.setitem(events.REGISTRY, ("notification.created", 2), CreatedV2)
    monkeypatch.setitem(codec._FIELDS, CreatedV2, codec._FIELDS[NotificationCreated])
    monkeypatch.setitem(codec._SPECS, CreatedV2, codec._SPECS[NotificationCreated])
    handler = projector_factory(settings, redis, "dlq-test")
    outcomes = await DeadLetters(redis, settings).retry(letters, handler)
    assert [o is None for o in outcomes] == [False, False, True]
    titles = [i["title"] for i in (await queries.page("alice")).items]
    assert titles == ["fine", "from the future"]  # applied at its own (older) position
    left = await runtime.dead_letters.letters([p])
    assert [x.reason.split(":")[0] for x in left] == ["malformed", "unknown_type"]
    await _stop(stop, task)


class FailingHandler:
    """A handler that fails every batch (a bug, or a dependency that is down)."""

    group = "flaky"
    claim_min_idle_ms: int | None = 0
    calls = 0

    def __init__(self, settings: Settings, redis: Any, consumer: str) -> None:
        self.consumer = consumer

    async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        FailingHandler.calls += 1
        raise RuntimeError("downstream is broken")

    async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        return [None] * len(entries)


async def test_entries_delivered_too_often_are_dead_lettered(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "BACKOFF_MAX_S", 0.02)
    settings = settings.replace(max_deliveries=3, partitions=1)
    producer = Producer(redis, settings)
    await producer.publish(producer.envelope("alice", NotificationCreated(title="x")))
    stop = asyncio.Event()
    rt = GroupRuntime(settings, redis, FailingHandler, block_ms=50)
    task = asyncio.create_task(rt.run(stop))
    dlq = DeadLetters(redis, settings)
    for _ in range(200):
        letters = await dlq.letters([0])
        if letters:
            break
        await asyncio.sleep(0.02)
    await _stop(stop, task)
    assert len(letters) == 1 and letters[0].group == "flaky"
    assert letters[0].reason.startswith("max_deliveries: delivered 4 times")
    assert FailingHandler.calls == 3
    assert (await redis.xpending(Keys(settings.prefix).stream(0), "flaky"))["pending"] == 0


@pytest.mark.cluster
async def test_crash_after_write_before_ack_changes_nothing_twice(
    redis: Any, settings: Settings
) -> None:
    settings = settings.replace(lease_ttl_s=0.5)
    producer, queries, keys = Producer(redis, settings), InboxQueries(redis, settings), \
        Keys(settings.prefix)
    appended = await producer.publish_many(
        [producer.envelope("alice", NotificationCreated(title=f"n{i}")) for i in range(10)]
    )
    p = appended[0].partition
    # Consumer A takes the lease, reads, applies, and "crashes" before acking.
    leases = Leases(redis, settings, "projector", "A", [p])
    assert (await leases.hold([p]))[p][0]
    group = StreamGroup(redis, keys, "projector", "A")
    await group.ensure([p])
    batch = (await group.read_new([p], 100, 10, per_partition=False))[p]
    handler = ProjectorHandler(settings, redis, "A")
    assert await handler.handle(p, batch) == [None] * 10
    assert (await redis.xpending(keys.stream(p), "projector"))["pending"] == 10
    assert await queries.unread_count("alice") == 10
    # B starts, takes over when A's lease expires, and redelivers A's pending entries.
    stop = asyncio.Event()
    rt, task = start_projector(settings, redis, stop)
    for _ in range(200):
        if (await redis.xpending(keys.stream(p), "projector"))["pending"] == 0:
            break
        await asyncio.sleep(0.02)
    await _stop(stop, task)
    assert (await redis.xpending(keys.stream(p), "projector"))["pending"] == 0
    assert rt.handled == 10  # the redelivered batch went through B...
    page = await queries.page("alice", limit=100)
    assert len(page.items) == 10 and page.unread_count == 10  # ...and changed nothing
    assert await queries.checkpoint(p) == appended[-1].position


async def test_missing_group_is_reported_not_recreated(redis: Any, settings: Settings) -> None:
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    keys = Keys(settings.prefix)
    for _ in range(100):
        if await redis.exists(keys.lease("projector", 2)):
            break
        await asyncio.sleep(0.02)
    await redis.xgroup_destroy(keys.stream(2), "projector")
    with pytest.raises(GroupMissingError, match="refusing to recreate"):
        await asyncio.wait_for(task, 5)
    groups = await redis.xinfo_groups(keys.stream(2))
    assert groups == []  # not silently recreated (neither at 0 nor at $)
    stop.set()


async def test_graceful_stop_acks_and_releases(redis: Any, settings: Settings) -> None:
    producer, keys = Producer(redis, settings), Keys(settings.prefix)
    stop = asyncio.Event()
    rt, task = start_projector(settings, redis, stop)
    for _ in range(100):
        if len(rt.leases.owned) == settings.partitions:
            break
        await asyncio.sleep(0.02)
    await producer.publish_many(
        [producer.envelope(f"u{i}", NotificationCreated(title="x")) for i in range(20)]
    )
    await asyncio.sleep(0.3)
    await _stop(stop, task)
    for p in range(settings.partitions):
        assert not await redis.exists(keys.lease("projector", p))
        assert (await redis.xpending(keys.stream(p), "projector"))["pending"] == 0
    assert await redis.zcard(keys.members("projector")) == 0


@pytest.mark.cluster
async def test_two_runtimes_share_the_partitions(redis: Any, settings: Settings) -> None:
    settings = settings.replace(partitions=8, lease_ttl_s=0.6)
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a, task_a = start_projector(settings, redis, stop_a, consumer="A")
    b, task_b = start_projector(settings, redis, stop_b, consumer="B")
    for _ in range(200):
        if len(a.leases.owned) == 4 and len(b.leases.owned) == 4:
            break
        await asyncio.sleep(0.05)
    assert len(a.leases.owned) == 4 and len(b.leases.owned) == 4
    assert not a.leases.owned & b.leases.owned
    task_a.cancel()  # A crashes: B takes everything once A's leases expire
    appended = await producer.publish_many(
        [producer.envelope(f"u{i}", NotificationCreated(title="x")) for i in range(50)]
    )
    await wait_projected(queries, appended, timeout=10)
    assert len(b.leases.owned) == 8
    await _stop(stop_b, task_b)


async def _xreadgroup_calls(redis: Any) -> int:
    """XREADGROUP commands served so far, summed over the server or every cluster node."""
    reply = await redis.execute_command("INFO", "commandstats", target_nodes="all") \
        if settings_is_cluster(redis) else {"one": await redis.info("commandstats")}
    total = 0
    for info in reply.values():
        stats = info if isinstance(info, dict) else {}
        total += int(stats.get("cmdstat_xreadgroup", {}).get("calls", 0))
    return total


def settings_is_cluster(redis: Any) -> bool:
    from herald.streams.connection import is_cluster

    return is_cluster(redis)


@pytest.mark.cluster
async def test_an_idle_consumer_waits_in_the_server(redis: Any, settings: Settings) -> None:
    """Idle, a consumer blocks in the server (one read per partition per block at most,
    on a cluster too), and an event published meanwhile is projected."""
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    stop = asyncio.Event()
    runtime, task = start_projector(settings, redis, stop, block_ms=1000)
    for _ in range(100):
        if len(runtime.leases.owned) == settings.partitions:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    before = await _xreadgroup_calls(redis)
    await asyncio.sleep(2.0)
    idle_reads = await _xreadgroup_calls(redis) - before
    # Blocking: one read per partition per block (1 s) on a cluster, one per lane on
    # one server. Polling every 50 ms would be ~20 per partition per second.
    assert idle_reads <= 2 * settings.partitions + 8, idle_reads
    appended = await producer.publish_many(
        [producer.envelope(f"u{i % 7}", NotificationCreated(title=f"n{i}")) for i in range(60)])
    await wait_projected(queries, appended)
    assert sum([await queries.unread_count(f"u{i}") for i in range(7)]) == 60
    await _stop(stop, task)


async def _backlog(redis: Any, settings: Settings, users: Sequence[str], *, items: int,
                   read_every: int) -> tuple[Sequence[Any], Any]:
    """``items`` notifications per user, then a read of every ``read_every``-th, all in
    the log before a projector starts; what was appended, and the model applied to it."""
    from tests.consumers.helpers.model import InboxModel

    producer = Producer(redis, settings)
    created = [producer.envelope(u, NotificationCreated(title=f"{u}-{n}"))
               for n in range(items) for u in users]
    reads = [producer.envelope(e.user, NotificationRead(notification_id=e.id))
             for e in created[::read_every]]
    appended = await producer.publish_many(created + reads)
    model = InboxModel(settings.inbox_max)
    for env, a in zip(created + reads, appended, strict=True):
        model.apply(env, a.position)
    return appended, model


async def test_a_round_split_over_several_apply_pipelines_projects_in_order(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up round larger than APPLY_CHUNK goes out as several pipelines at once
    (on several connections); each partition's batch is still applied once, in log
    order, and the result equals the in-memory model."""
    from herald.consumers.projection import projector as projector_module
    from tests.consumers.helpers import inbox_state, model_state

    monkeypatch.setattr(projector_module, "APPLY_CHUNK", 3)
    settings = settings.replace(partitions=8)
    queries = InboxQueries(redis, settings)
    users = [f"u{i}" for i in range(12)]
    appended, model = await _backlog(redis, settings, users, items=4, read_every=3)
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    await wait_projected(queries, appended)
    await _stop(stop, task)
    assert await inbox_state(queries, users) == model_state(model, users)


async def test_a_backlog_round_reads_at_most_round_entries_in_all(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per partition a read asks for min(read_batch, ROUND_ENTRIES // partitions), so a
    catch-up round over many partitions stays bounded in all; nothing is skipped."""
    from herald.consumers.group import intake as intake_module

    monkeypatch.setattr(intake_module, "ROUND_ENTRIES", 20)
    settings = settings.replace(partitions=8, read_batch=50)
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    appended = await producer.publish_many(
        [producer.envelope(f"u{i % 16}", NotificationCreated(title=f"n{i}")) for i in range(240)]
    )
    rounds: list[tuple[int, int]] = []  # (count asked per partition, entries returned)
    read_new = StreamGroup.read_new

    async def spy(self: StreamGroup, partitions: Sequence[int], count: int, *args: Any,
                  **kwargs: Any) -> dict[int, list[Entry]]:
        got = await read_new(self, partitions, count, *args, **kwargs)
        rounds.append((count, sum(len(v) for v in got.values())))
        return got

    monkeypatch.setattr(StreamGroup, "read_new", spy)
    stop = asyncio.Event()
    runtime, task = start_projector(settings, redis, stop)
    await wait_projected(queries, appended)
    await _stop(stop, task)
    busy = len({a.partition for a in appended})
    assert rounds[0] == (20 // 8, busy * (20 // 8))  # every partition's log is longer
    assert max(total for _, total in rounds) <= 20
    lane = runtime.lanes[0]
    assert (lane.count(1), lane.count(3), lane.count(100)) == (20, 6, 1)
    monkeypatch.setattr(intake_module, "ROUND_ENTRIES", 1000)
    assert (lane.count(8), lane.count(40)) == (50, 25)  # read_batch is the other bound
    assert sum([await queries.unread_count(f"u{i}") for i in range(16)]) == 240


async def test_backlog_rounds_overlap_and_each_partition_applies_in_order(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog is read ahead without blocking, split over connections, and the next
    round is sent while the previous one is still applying; a partition's script is
    still sent only after the reply to its previous one, every entry is handled once,
    and the result equals the in-memory model."""
    from herald.consumers.group import intake as intake_module
    from herald.consumers.projection import projector as projector_module
    from tests.consumers.helpers import inbox_state, model_state

    monkeypatch.setattr(intake_module, "ROUND_ENTRIES", 16)  # 2 per partition a round
    monkeypatch.setattr(projector_module, "APPLY_CHUNK", 3)
    settings = settings.replace(partitions=8)
    queries = InboxQueries(redis, settings)
    users = [f"u{i}" for i in range(12)]
    appended, model = await _backlog(redis, settings, users, items=5, read_every=2)

    log: list[tuple[str, int]] = []  # ("sent" | "replied", partition), in order
    overlapped: list[bool] = []
    send, start = ProjectorHandler._send, ProjectorHandler.start_settled

    async def spy_send(self: ProjectorHandler, calls: Any, wakes: Any = None) -> Any:
        log.extend(("sent", p) for p, _, _ in calls)
        replies = await send(self, calls, wakes)
        log.extend(("replied", p) for p, _, _ in calls)
        return replies

    async def spy_start(self: ProjectorHandler, batches: Any) -> Any:
        overlapped.append(any(not task.done() for task in self._last.values()))
        return await start(self, batches)

    monkeypatch.setattr(ProjectorHandler, "_send", spy_send)
    monkeypatch.setattr(ProjectorHandler, "start_settled", spy_start)
    splits: list[int] = []
    read_new = StreamGroup.read_new

    async def spy_read(self: StreamGroup, *args: Any, **kwargs: Any) -> Any:
        splits.append(kwargs.get("connections", 1))
        return await read_new(self, *args, **kwargs)

    monkeypatch.setattr(StreamGroup, "read_new", spy_read)
    stop = asyncio.Event()
    runtime, task = start_projector(settings, redis, stop)
    await wait_projected(queries, appended)
    await _stop(stop, task)
    assert await inbox_state(queries, users) == model_state(model, users)
    assert runtime.handled == len(appended)  # nothing handled twice
    assert any(overlapped), "no round was sent while the one before was applying"
    assert intake_module.BACKLOG_CONNECTIONS in splits
    in_flight: set[int] = set()
    for what, p in log:
        if what == "sent":
            assert p not in in_flight, f"partition {p} sent again before its reply"
            in_flight.add(p)
        else:
            in_flight.discard(p)


def test_preparer_is_pure_and_keeps_order(settings: Settings) -> None:
    producer = _Base(settings)
    envs = [producer.envelope("alice", NotificationCreated(title=f"n{i}")) for i in range(3)]
    p = producer.partition("alice")
    batch = Preparer(settings).prepare(p, "v", [Entry(f"{i}-0", codec.encode(e))
                                                for i, e in enumerate(envs, 1)])
    assert [r[0] for r in batch.records] == ["1-0", "2-0", "3-0"] and batch.target == "3-0"


async def test_entries_a_stale_reader_received_are_applied_in_order(
    redis: Any, settings: Settings
) -> None:
    """An ex-owner's blocking read can still receive entries after a takeover."""
    settings = settings.replace(partitions=1, lease_ttl_s=0.6)
    producer, queries, keys = Producer(redis, settings), InboxQueries(redis, settings), \
        Keys(settings.prefix)
    await StreamGroup(redis, keys, "projector", "x").ensure([0])
    stale = connect(settings)
    try:
        blocked = asyncio.create_task(stale.xreadgroup(
            "projector", "ex-owner", {keys.stream(0): ">"}, count=1, block=5000))
        await asyncio.sleep(0.1)  # the stale read blocks first, so it is served first
        stop = asyncio.Event()
        _, task = start_projector(settings, redis, stop)
        created = producer.envelope("alice", NotificationCreated(title="first"))
        first = await producer.publish(created)
        assert (await blocked)[0][1][0][0].decode() == first.position  # the stale reader got it
        # The tail case: nothing newer arrives; the owner still finds and applies it.
        assert await queries.wait_for(0, first.position, 5)
        # The gap case: the stale reader takes an entry, the owner gets a newer one.
        blocked = asyncio.create_task(stale.xreadgroup(
            "projector", "ex-owner", {keys.stream(0): ">"}, count=1, block=5000))
        await asyncio.sleep(0.3)
        second = producer.envelope("alice", NotificationCreated(title="second"))
        second_at = await producer.publish(second)
        assert (await blocked)[0][1][0][0].decode() == second_at.position
        read = await producer.publish(producer.envelope(
            "alice", NotificationRead(notification_id=second.id)))
        assert await queries.wait_for(0, read.position, 5)
        item = await queries.item("alice", second.id)
        assert item is not None and item["read_at"] is not None  # created, then read: in order
        await _stop(stop, task)
        assert (await redis.xpending(keys.stream(0), "projector"))["pending"] == 0
    finally:
        await stale.aclose()


async def test_projector_dead_letters_entries_delivered_too_often(
    redis: Any, settings: Settings
) -> None:
    """Entries a crashed reader took (one delivery each) exceed a limit of 1 on takeover."""
    settings = settings.replace(partitions=1, max_deliveries=1, lease_ttl_s=0.5)
    producer, queries, keys = Producer(redis, settings), InboxQueries(redis, settings), \
        Keys(settings.prefix)
    envs = [producer.envelope("alice", NotificationCreated(title=f"n{i}")) for i in range(3)]
    appended = await producer.publish_many(envs)
    group = StreamGroup(redis, keys, "projector", "crashed")
    await group.ensure([0])
    assert len((await group.read_new([0], 2, 10, per_partition=False))[0]) == 2
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    assert await queries.wait_for(0, appended[-1].position, 5)
    await _stop(stop, task)
    letters = await DeadLetters(redis, settings).letters([0])
    assert [x.position for x in letters] == [a.position for a in appended[:2]]
    assert all(x.reason.startswith("max_deliveries: delivered 2 times") for x in letters)
    assert [i["title"] for i in (await queries.page("alice")).items] == ["n2"]
    assert (await redis.xpending(keys.stream(0), "projector"))["pending"] == 0
    outcomes = await DeadLetters(redis, settings).retry(
        letters, projector_factory(settings, redis, "dlq"))
    assert outcomes == [None, None]
    assert [i["title"] for i in (await queries.page("alice")).items] == ["n2", "n1", "n0"]


async def test_rounds_the_store_refused_do_not_count_toward_the_delivery_limit(
        redis: Any, settings: Settings) -> None:
    """A full or unreachable store fails rounds again and again; each failure re-reads
    the entries (Redis counts a delivery each time: XAUTOCLAIM and XREADGROUP are allowed
    at maxmemory, the apply script's first write is not), yet no entry is dead-lettered
    as poison for it. A handler that fails on the entry itself still reaches the limit.
    (Found by the chaos suite's memory-full scenario: 156 entries dead-lettered.)"""
    settings = settings.replace(max_deliveries=2)
    runtime = GroupRuntime(settings, redis, projector_factory, consumer="c1")
    entry = Entry("1-0", b"x", 4)  # delivered 4 times
    full = redis_exceptions.OutOfMemoryError("OOM command not allowed")
    for _ in range(3):  # three rounds the store refused
        runtime._account({3: [entry]}, {3: full})
    assert runtime._early_outcomes(3, [entry]) == [None]
    assert isinstance(runtime._early_outcomes(4, [entry])[0], DeadLetter)  # no excuse
    runtime._account({3: [entry]}, {3: [None]})  # a success forgets the excuse
    assert isinstance(runtime._early_outcomes(3, [entry])[0], DeadLetter)
    runtime._account({5: [entry]}, {5: RuntimeError("the handler broke")})
    assert isinstance(runtime._early_outcomes(5, [entry])[0], DeadLetter)


@pytest.mark.cluster
async def test_waiting_for_others_does_not_count_toward_the_delivery_limit(
        redis: Any, settings: Settings) -> None:
    """A gap, a regressed log or a projector that is behind fail the round for a reason
    outside its entries: excused like the store's refusals. (The chaos suite's worker
    kills: 1,353 healthy webhook entries dead-lettered after recoveries.)"""
    from herald.consumers.delivery.state import ProjectorBehindError
    from herald.consumers.errors import LogRegressedError, PendingGapError

    settings = settings.replace(max_deliveries=2)
    runtime = GroupRuntime(settings, redis, projector_factory, consumer="c1")
    entry = Entry("1-0", b"x", 4)
    for error in (PendingGapError(3, "1-0"), LogRegressedError(3, "1-0"),
                  ProjectorBehindError("behind")):
        runtime._account({3: [entry]}, {3: error})
    assert runtime._early_outcomes(3, [entry]) == [None]


async def test_the_sweep_leaves_this_consumers_own_pending_entries_alone(
        redis: Any, settings: Settings) -> None:
    """The periodic sweep recovers partitions where another consumer holds pending
    entries; re-reading this consumer's own (a round in flight, its read-ahead) would
    count one more delivery per sweep until healthy entries reach the limit."""
    settings = settings.replace(partitions=1, claim_idle_s=0.05, max_deliveries=1)
    producer = Producer(redis, settings)
    group = StreamGroup(redis, Keys(settings.prefix), "slow", "me")
    await group.ensure([0])
    await producer.publish(producer.envelope("alice", NotificationCreated(title="x")))
    assert await group.read_new([0], 10, None, per_partition=False)  # pending with "me"
    leases = Leases(redis, settings, "slow", "me", [0])
    await leases.cycle()
    from herald.consumers.group.intake import Intake
    from herald.streams.log import get_logger

    intake = Intake(settings, group, leases, claim_min_idle_ms=50, block_ms=10,
                    per_partition=False, log=get_logger("test"))
    await asyncio.sleep(0.1)  # a sweep is due
    stop = asyncio.Event()
    stop.set()
    assert await intake.next(stop) == {}  # nothing re-read ...
    pending = await redis.xpending_range(Keys(settings.prefix).stream(0), "slow", "-", "+", 10)
    assert [p["times_delivered"] for p in pending] == [1]  # ... nor counted again
    other = StreamGroup(redis, Keys(settings.prefix), "slow", "other")
    await producer.publish(producer.envelope("alice", NotificationCreated(title="y")))
    assert await other.read_new([0], 10, None, per_partition=False)  # another one's
    await asyncio.sleep(0.1)
    batches = await intake.next(stop)  # recovered: claimed and re-read in order
    assert [len(entries) for entries in batches.values()] == [2]
