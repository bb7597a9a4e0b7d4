"""The apply script: inbox rules, the checkpoint, fencing, the view check, the signal."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import pytest
import redis.exceptions

from herald.consumers.group.handler import DeadLetter, Entry
from herald.consumers.projection.applier import BUILD, LATE, LIVE, Applier, Preparer
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.builder import Builder
from herald.streams import codec
from herald.streams.events import (
    AllRead,
    InboxBulkMarked,
    InboxSeen,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationSnoozed,
    NotificationUnarchived,
    NotificationUnread,
    NotificationWoke,
    Payload,
)
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from herald.streams.signals import SignalSubscriber
from tests.consumers.helpers import start_projector, wait_projected
from tests.consumers.helpers.model import InboxModel


class Harness:
    """Feeds events at synthetic positions straight to the applier (no runtime)."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis, self.settings = redis, settings
        self.producer = Producer(redis, settings)
        self.preparer = Preparer(settings)
        self.applier = Applier(redis, settings)
        self.queries = InboxQueries(redis, settings)
        self.model = InboxModel(settings.inbox_max)
        self.seq = 0

    def entry(self, user: str, payload: Payload) -> tuple[Entry, Any]:
        self.seq += 1
        env = self.producer.envelope(user, payload, time_ms=1_700_000_000_000 + self.seq)
        return Entry(f"{1_700_000_000_000 + self.seq}-0", codec.encode(env)), env

    async def send(self, user: str, *payloads: Payload, mode: str = BUILD,
                   in_log: bool = True, deliver: bool = True, **kw: Any) -> Any:
        pairs = [self.entry(user, p) for p in payloads]
        p = self.producer.partition(user)
        if mode == LIVE and in_log:  # a live batch was read from the log
            stream = Keys(self.settings.prefix).stream(p)
            for e, _ in pairs:
                await self.producer.redis.xadd(stream, {"e": e.raw}, id=e.position)
            if deliver:  # ... through the group
                with contextlib.suppress(redis.exceptions.ResponseError):  # no group yet
                    read = await self.producer.redis.xreadgroup(
                        "projector", kw.get("consumer", "me"), {stream: ">"})
                    ids = [eid for _, rows in read for eid, _ in rows]
                    if ids:  # delivered, and not left pending (a gap for the next batch)
                        await self.producer.redis.xack(stream, "projector", *ids)
        batch = self.preparer.prepare(p, LIVE_NS, [e for e, _ in pairs])
        result = await self.applier.apply(p, LIVE_NS, batch, mode=mode, **kw)
        if result.status == "ok":
            for e, env in pairs:
                self.model.apply(env, e.position)
        return result, [env for _, env in pairs]


@pytest.fixture
async def h(redis: Any, settings: Settings) -> Harness:
    return Harness(redis, settings.replace(inbox_max=3))


async def check(h: Harness, user: str) -> None:
    for status in ("all", "unread", "read", "archived", "snoozed"):
        page = await h.queries.page(user, status=status, limit=100)
        assert page.items == h.model.inbox(user, status), status
        assert page.unread_count == h.model.unread(user)
        assert page.unseen_count == h.model.unseen(user)
    assert await h.queries.counts(user) == h.model.counts(user)


async def test_seen_snooze_unarchive_bulk_and_expiry(h: Harness) -> None:
    h.settings = h.settings.replace(inbox_max=10)
    h.preparer, h.applier = Preparer(h.settings), Applier(h.redis, h.settings)
    h.model.inbox_max = 10
    far = 4_000_000_000_000
    _, (a, b, _c, gone) = await h.send(
        "zoe", NotificationCreated(title="a", category="orders"),
        NotificationCreated(title="b", category="news"),
        NotificationCreated(title="c", category="orders", expires_at=far),
        NotificationCreated(title="expired", expires_at=1))
    await check(h, "zoe")
    page = await h.queries.page("zoe", limit=100)
    assert [i["title"] for i in page.items] == ["c", "b", "a"]  # the expired one is hidden
    assert page.unseen_count == 3 and page.unread_count == 3
    await h.send("zoe", InboxSeen())  # the inbox opened: badge cleared, nothing read
    page = await h.queries.page("zoe", limit=100)
    assert page.unseen_count == 0 and page.unread_count == 3
    assert all(i["seen"] and i["read_at"] is None for i in page.items)
    await h.send("zoe", NotificationSnoozed(notification_id=a.id, until=far))
    await check(h, "zoe")
    assert [i["title"] for i in (await h.queries.page("zoe", status="snoozed")).items] == ["a"]
    assert (await h.queries.counts("zoe"))["snoozed"] == 1
    await h.send("zoe", NotificationWoke(notification_id=a.id, until=far - 1))  # stale: no-op
    await check(h, "zoe")
    await h.send("zoe", NotificationWoke(notification_id=a.id, until=far))
    await check(h, "zoe")
    woke = await h.queries.item("zoe", a.id)
    assert woke is not None and woke["read_at"] is None and woke["seen"] is False
    await h.send("zoe", InboxBulkMarked(action="read", category="orders"))
    await check(h, "zoe")
    assert (await h.queries.counts("zoe"))["categories"] == {
        "orders": {"total": 2, "unread": 0}, "news": {"total": 1, "unread": 1}}
    await h.send("zoe", InboxBulkMarked(action="archived"))
    await check(h, "zoe")
    await h.send("zoe", NotificationUnarchived(notification_id=b.id))
    await check(h, "zoe")
    assert [i["title"] for i in (await h.queries.page("zoe", status="unread")).items] == ["b"]
    # A new item prunes the expired one from the projection (by log time).
    await h.send("zoe", NotificationCreated(title="d"))
    assert await h.redis.exists(Keys(h.settings.prefix).item(
        h.producer.partition("zoe"), gone.id)) == 0
    await check(h, "zoe")


async def test_read_unread_archive_delete_follow_the_rules(h: Harness) -> None:
    _, (a, b) = await h.send("alice", NotificationCreated(title="a"),
                             NotificationCreated(title="b"))
    await h.send("alice", NotificationRead(notification_id=a.id))
    await check(h, "alice")
    assert (await h.queries.item("alice", a.id))["read_at"] is not None  # type: ignore[index]
    await h.send("alice", NotificationRead(notification_id=a.id))  # no-op: stays first read time
    await h.send("alice", NotificationUnread(notification_id=a.id),
                 NotificationArchived(notification_id=b.id))
    await check(h, "alice")
    assert await h.queries.unread_count("alice") == 1
    await h.send("alice", NotificationRead(notification_id=b.id))  # archived and read
    await check(h, "alice")
    await h.send("alice", NotificationDeleted(notification_id=a.id))
    await check(h, "alice")
    assert await h.queries.item("alice", a.id) is None


async def test_someone_elses_item_is_untouched(h: Harness) -> None:
    _, (a,) = await h.send("alice", NotificationCreated(title="a"))
    for payload in (NotificationRead(notification_id=a.id),
                    NotificationArchived(notification_id=a.id),
                    NotificationDeleted(notification_id=a.id)):
        await h.send("bob", payload)
    await check(h, "alice")
    assert await h.queries.item("bob", a.id) is None
    assert (await h.queries.item("alice", a.id))["archived"] is False  # type: ignore[index]


async def test_inbox_cap_drops_the_oldest_and_their_state(h: Harness, redis: Any) -> None:
    _, envs = await h.send("alice", *(NotificationCreated(title=f"n{i}") for i in range(5)))
    await check(h, "alice")
    titles = [i["title"] for i in (await h.queries.page("alice")).items]
    assert titles == ["n4", "n3", "n2"]
    keys = Keys(h.settings.prefix)
    p = h.producer.partition("alice")
    assert not await redis.exists(keys.item(p, envs[0].id), keys.item(p, envs[1].id))


async def test_read_all_up_to_a_position(h: Harness) -> None:
    _, envs = await h.send("alice", *(NotificationCreated(title=f"n{i}") for i in range(3)))
    middle = await h.queries.item("alice", envs[1].id)
    await h.send("alice", NotificationArchived(notification_id=envs[0].id))
    await h.send("alice", AllRead(up_to=middle["position"]))  # type: ignore[index]
    await check(h, "alice")
    assert [i["title"] for i in (await h.queries.page("alice", status="unread")).items] == ["n2"]
    archived = (await h.queries.page("alice", status="archived")).items
    assert archived[0]["read_at"] is None  # archived items are not read by read-all
    await h.send("alice", AllRead())
    await check(h, "alice")
    assert await h.queries.unread_count("alice") == 0


async def test_entries_at_or_below_the_checkpoint_are_no_ops(h: Harness, redis: Any) -> None:
    entry, _ = h.entry("alice", NotificationCreated(title="once"))
    p = h.producer.partition("alice")
    batch = h.preparer.prepare(p, LIVE_NS, [entry])
    first = await h.applier.apply(p, LIVE_NS, batch, mode=BUILD)
    again = await h.applier.apply(p, LIVE_NS, batch, mode=BUILD)
    assert (first.applied, first.skipped) == (1, 0)
    assert (again.applied, again.skipped) == (0, 1)
    assert await h.queries.checkpoint(p) == entry.position
    assert await h.queries.unread_count("alice") == 1
    # A late retry ignores the checkpoint (item exists: still one), and keeps it.
    late = await h.applier.apply(p, LIVE_NS, batch, mode=LATE)
    assert late.applied == 1 and await h.queries.checkpoint(p) == entry.position
    assert len((await h.queries.page("alice")).items) == 1


async def test_live_mode_is_fenced_by_the_lease(h: Harness, redis: Any) -> None:
    p = h.producer.partition("alice")
    lease = Keys(h.settings.prefix).lease("projector", p)
    await redis.xgroup_create(Keys(h.settings.prefix).stream(p), "projector", "0", mkstream=True)
    result, _ = await h.send("alice", NotificationCreated(title="x"), mode=LIVE, consumer="me")
    assert result.status == "fenced"
    await redis.set(lease, "me")
    result, _ = await h.send("alice", NotificationCreated(title="x"), mode=LIVE, consumer="me")
    assert result.status == "ok" and result.applied == 1
    assert await h.queries.unread_count("alice") == 1


async def test_live_mode_refuses_a_batch_the_log_no_longer_has(h: Harness, redis: Any) -> None:
    """Read, then the server lost writes (restarted from an older state): applying the
    batch would put the projection ahead of the log, so nothing is written."""
    p = h.producer.partition("alice")
    await redis.set(Keys(h.settings.prefix).lease("projector", p), "me")
    await redis.xgroup_create(Keys(h.settings.prefix).stream(p), "projector", "0", mkstream=True)
    result, _ = await h.send("alice", NotificationCreated(title="x"), mode=LIVE,
                             consumer="me", in_log=False)
    assert (result.status, result.ns) == ("lost", f"{1_700_000_000_000 + h.seq}-0")
    assert await h.queries.checkpoint(p) is None and await h.queries.unread_count("alice") == 0
    result, _ = await h.send("alice", NotificationCreated(title="y"), mode=LIVE, consumer="me")
    assert result.status == "ok" and await h.queries.unread_count("alice") == 1


async def test_live_mode_refuses_a_batch_whose_delivery_the_server_lost(
        h: Harness, redis: Any) -> None:
    """The server kept the entries but lost their delivery to the group (a power
    loss with appendfsync everysec): entries the group has not delivered may lie
    below the batch, and applying it would move the checkpoint over them (the chaos
    suite found 80 notifications in the log and never in an inbox). Refused as
    ``lost``; read again through the group, the same entries apply."""
    p = h.producer.partition("alice")
    keys = Keys(h.settings.prefix)
    await redis.set(keys.lease("projector", p), "me")
    await redis.xgroup_create(keys.stream(p), "projector", "0", mkstream=True)
    result, _ = await h.send("alice", NotificationCreated(title="x"), mode=LIVE,
                             consumer="me", deliver=False)
    assert (result.status, result.ns) == ("lost", f"{1_700_000_000_000 + h.seq}-0")
    assert await h.queries.checkpoint(p) is None and await h.queries.unread_count("alice") == 0
    result, _ = await h.send("alice", NotificationCreated(title="y"), mode=LIVE, consumer="me")
    assert result.status == "ok" and await h.queries.unread_count("alice") == 1


async def test_a_switched_view_is_reported_not_written(h: Harness, redis: Any) -> None:
    p = h.producer.partition("alice")
    await redis.set(Keys(h.settings.prefix).partition_view(p), "r1")
    result, _ = await h.send("alice", NotificationCreated(title="x"), mode=LATE)
    assert (result.status, result.ns) == ("ns", "r1")
    assert await h.queries.checkpoint(p) is None  # reads follow the pointer too


async def test_poison_is_a_dead_letter_and_the_batch_flows(h: Harness) -> None:
    good, _ = h.entry("alice", NotificationCreated(title="ok"))
    wrong_user, _ = h.entry("bob", NotificationCreated(title="elsewhere"))
    entries = [Entry("1-1", b"\xc1garbage"), good, wrong_user, Entry("1-2", None)]
    p = h.producer.partition("alice")
    assert h.producer.partition("bob") != p
    batch = h.preparer.prepare(p, LIVE_NS, entries)
    assert isinstance(batch.outcomes[0], DeadLetter) and "malformed" in batch.outcomes[0].reason
    assert batch.outcomes[1] is None and batch.outcomes[3] is None
    assert "wrong_partition" in batch.outcomes[2].reason  # type: ignore[union-attr]
    assert batch.target == "1-2" and len(batch.records) == 1


async def test_signal_is_published_after_the_state_is_queryable(
    redis: Any, settings: Settings
) -> None:
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    p = producer.partition("alice")
    channel = Keys(settings.prefix).signal_channel(p)
    heard: asyncio.Queue[bytes] = asyncio.Queue()
    confirmed = asyncio.Event()
    signals = SignalSubscriber(redis, lambda _c, data: heard.put_nowait(data),
                               lambda _c: confirmed.set())
    await signals.subscribe([channel])
    await asyncio.wait_for(confirmed.wait(), 5)
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    try:
        env = producer.envelope("alice", NotificationCreated(title="ping"))
        appended = await producer.publish(env)
        body = orjson.loads(await asyncio.wait_for(heard.get(), 10))
        assert body == {"users": {"alice": appended.position}}
        item = await queries.item("alice", env.id)  # already there when the signal arrives
        assert item is not None and item["position"] == appended.position
        # Reading it signals once; reading it again is a no-op and signals nothing.
        await producer.publish(producer.envelope("alice", NotificationRead(notification_id=env.id)))
        await producer.publish(producer.envelope("alice", NotificationRead(notification_id=env.id)))
        await asyncio.wait_for(heard.get(), 10)
        await asyncio.sleep(0.5)
        assert heard.empty()
    finally:
        stop.set()
        await task
        await signals.stop()


async def test_live_mode_refuses_to_skip_an_entry_pending_elsewhere(
    h: Harness, redis: Any
) -> None:
    """A stale read of an ex-owner may hold an older entry: the batch must wait for it."""
    p = h.producer.partition("alice")
    keys = Keys(h.settings.prefix)
    await redis.set(keys.lease("projector", p), "me")
    await redis.xgroup_create(keys.stream(p), "projector", "0", mkstream=True)
    older = await h.producer.publish(h.producer.envelope("alice", NotificationCreated(title="a")))
    await redis.xreadgroup("projector", "ex-owner", {keys.stream(p): ">"}, count=10)
    env = h.producer.envelope("alice", NotificationCreated(title="b"))
    newer = await h.producer.publish(env)
    batch = h.preparer.prepare(p, LIVE_NS, [Entry(newer.position, codec.encode(env))])
    result = await h.applier.apply(p, LIVE_NS, batch, mode=LIVE, consumer="me")
    assert (result.status, result.ns) == ("gap", older.position)
    assert await h.queries.checkpoint(p) is None and await h.queries.unread_count("alice") == 0
    # Once the older entry is applied (checkpoint past it), newer batches flow.
    await redis.set(keys.checkpoint(p, LIVE_NS, "projector"), older.position)
    await redis.xreadgroup("projector", "me", {keys.stream(p): ">"})  # the newer one
    result = await h.applier.apply(p, LIVE_NS, batch, mode=LIVE, consumer="me")
    assert result.status == "ok" and await h.queries.unread_count("alice") == 1


async def test_projector_and_build_load_the_script_after_a_flush(
    redis: Any, settings: Settings
) -> None:
    """Apply calls are queued as bare EVALSHA (no SCRIPT EXISTS per pipeline): after a
    SCRIPT FLUSH the NOSCRIPT ones are resent once loaded, and nothing applies twice."""
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    users = [f"u{i}" for i in range(12)]
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    try:
        first = await producer.publish_many(
            [producer.envelope(u, NotificationCreated(title="one")) for u in users])
        await wait_projected(queries, first)
        await redis.script_flush()
        second = await producer.publish_many(
            [producer.envelope(u, NotificationCreated(title="two")) for u in users])
        await wait_projected(queries, second)
    finally:
        stop.set()
        await task
    for u in users:
        page = await queries.page(u, status="all", limit=100)
        assert [i["title"] for i in page.items] == ["two", "one"]
        assert page.unread_count == 2
    await redis.script_flush()
    stats = await Builder(redis, settings).build_many(
        sorted({producer.partition(u) for u in users}), "scratch")
    assert stats.entries == 2 * len(users) and stats.skipped == 0
    keys = Keys(settings.prefix)
    for u in users:
        assert await redis.zcard(keys.inbox(producer.partition(u), u, "scratch")) == 2
