"""Snapshots, archive and trimming end to end: the window Redis keeps is bounded, and
replay from a snapshot or from the start still ends exactly where live is."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.consumers.errors import RetentionError
from herald.consumers.projection.base import LAYOUT
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.consumers.retention.as_of import InboxAsOf
from herald.consumers.retention.role import Retention
from herald.consumers.retention.snapshots import Snapshot
from herald.streams.archive import ArchiveError, SegmentStore, open_storage
from herald.streams.errors import ValidationError
from herald.streams.events import (
    DigestItemAdded,
    NotificationArchived,
    NotificationCreated,
    NotificationRead,
    NotificationScheduled,
    NotificationUnread,
    ProfileChanged,
)
from herald.streams.positions import MAX_SEQ
from tests.consumers.helpers.harness import Harness, now_ms

USERS = [f"user{i}" for i in range(12)]


async def _traffic(h: Harness, rounds: int, tag: str) -> None:
    for r in range(rounds):
        for user in USERS:
            made = await h.publish(user, NotificationCreated(title=f"{tag} {r} {user}",
                                                             data={"r": r}))
            if r % 2:
                await h.publish(user, NotificationRead(notification_id=made.id))
            if r % 3 == 2:
                await h.publish(user, NotificationArchived(notification_id=made.id))
    for user in USERS[:3]:
        await h.publish(user, NotificationScheduled(title=f"{tag} later", deliver_at=now_ms()
                                                    + 3_600_000))
        await h.publish(user, DigestItemAdded(title=f"{tag} digest", digest_key="d",
                                              window_end=now_ms() + 3_600_000))
        await h.publish(user, ProfileChanged(email=f"{user}@example.com"))
    for user in USERS:
        await h.projected(user)


async def _inboxes(h: Harness) -> dict[str, list[tuple[str, str | None, bool]]]:
    out = {}
    for user in USERS:
        page = await h.queries.page(user, limit=100)
        out[user] = [(i["title"], i["read_at"], i["archived"]) for i in page.items]
    return out


@pytest.mark.cluster
async def test_snapshot_trim_then_replay_from_snapshot_and_from_start(h: Harness) -> None:
    h.start_projector()
    await _traffic(h, 3, "before")
    retention = Retention(h.settings, h.redis)
    for p in range(h.settings.partitions):
        report = await retention.step(p, force=True)
        assert report.snapshot is not None and report.blocked_by is None
        assert report.archived is not None and report.archived.trimmed_to is not None
    # Redis now holds only what came after the snapshots: the streams are empty.
    lengths = [await h.redis.xlen(h.keys.stream(p)) for p in range(h.settings.partitions)]
    assert sum(lengths) == 0
    await _traffic(h, 2, "after")
    live = await _inboxes(h)
    assert all(len(items) == 5 for items in live.values())

    for from_start in (False, True):
        report = await Verifier(h.redis, h.settings, from_start=from_start).run()
        assert report.identical, report.differences
    replayed = await Replay(h.redis, h.settings).run()
    assert replayed.snapshots == h.settings.partitions
    assert await _inboxes(h) == live
    await Replay(h.redis, h.settings, from_start=True).run()
    assert await _inboxes(h) == live
    # A second round keeps the window bounded and replay still agrees.
    for p in range(h.settings.partitions):
        await retention.step(p, force=True)
    assert sum([await h.redis.xlen(h.keys.stream(p)) for p in range(h.settings.partitions)]) == 0
    assert (await Verifier(h.redis, h.settings, from_start=True).run()).identical


async def test_a_lagging_group_holds_trimming_back_and_is_named(h: Harness) -> None:
    h.start_projector()
    await _traffic(h, 1, "x")
    p = h.producer.partition(USERS[0])
    await h.redis.xgroup_create(h.keys.stream(p), "laggard", id="0")
    before = await h.redis.xlen(h.keys.stream(p))
    report = await Retention(h.settings, h.redis).step(p, force=True)
    assert report.snapshot is not None and report.blocked_by == "laggard"
    assert await h.redis.xlen(h.keys.stream(p)) == before  # nothing trimmed, nothing lost
    state = await h.redis.hgetall(h.keys.archive_state(p))
    assert state[b"blocked_by"] == b"laggard"
    # Once it has read and acked half, trimming goes that far and no further.
    rows = await h.redis.xreadgroup("laggard", "c1", {h.keys.stream(p): ">"}, count=before // 2)
    read = [pos for pos, _ in rows[0][1]]
    await h.redis.xack(h.keys.stream(p), "laggard", *read)
    await Retention(h.settings, h.redis).step(p)
    assert await h.redis.xlen(h.keys.stream(p)) == before - len(read)


async def test_a_corrupt_or_missing_archive_makes_replay_fail_loudly(h: Harness) -> None:
    h.start_projector()
    await _traffic(h, 1, "x")
    p = h.producer.partition(USERS[0])
    retention = Retention(h.settings, h.redis)
    await retention.step(p, force=True)
    storage = open_storage(h.settings.archive_location)
    [segment] = await SegmentStore(storage).segments(p)
    data = bytearray(await storage.get(segment.name))
    data[-5] ^= 0xFF
    await storage.put(segment.name, bytes(data))
    with pytest.raises(ArchiveError, match=segment.name.rpartition("/")[2]):
        await Verifier(h.redis, h.settings, from_start=True).run([p])
    await storage.delete(segment.name)
    with pytest.raises(ArchiveError):
        await Replay(h.redis, h.settings, from_start=True).run([p])
    # A snapshot of another projection layout is refused with what to do.
    [snapshot] = await retention.snapshots.all(p)
    bad = Snapshot(p, snapshot.position, snapshot.name)
    raw = await storage.get(snapshot.name)
    current = b"\xa6layout" + bytes([LAYOUT])
    assert current in raw
    await storage.put(snapshot.name, raw.replace(current, b"\xa6layout\x09"))
    with pytest.raises(RetentionError, match="--from-start"):
        await retention.snapshots.read(bad)


async def test_inbox_as_of_equals_what_the_inbox_was_then(h: Harness) -> None:
    h.start_projector()
    user = USERS[0]
    p = h.producer.partition(user)
    retention = Retention(h.settings, h.redis)
    recorded: list[tuple[str, list[tuple[str, str | None, bool]]]] = []
    for phase in range(4):
        await _traffic(h, 2, f"phase{phase}")
        last = (await h.redis.xrevrange(h.keys.stream(p), count=1))[0][0].decode()
        page = await h.queries.page(user, limit=100)
        recorded.append((last, [(i["title"], i["read_at"], i["archived"]) for i in page.items]))
        if phase % 2 == 0:
            await retention.step(p, force=True)  # snapshots and trims between the moments
    rebuild = InboxAsOf(h.redis, h.settings)
    for position, inbox in recorded:
        page, at = await rebuild.page(user, position, limit=100)
        assert at == position
        assert [(i["title"], i["read_at"], i["archived"]) for i in page.items] == inbox
    # A time gives everything up to that millisecond; nothing of the rebuild is left.
    first_ms = int(recorded[0][0].partition("-")[0])
    page, at = await rebuild.page(user, _iso(first_ms))
    assert at == f"{first_ms}-{MAX_SEQ}"
    assert await h.redis.keys(f"{h.settings.prefix}:*:sq*") == []
    assert await h.redis.keys(f"{h.settings.prefix}:*registry*") == []
    with pytest.raises(ValidationError, match="as_of"):
        await rebuild.page(user, "yesterday-ish")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


async def test_a_duplicate_across_a_snapshot_stays_a_duplicate(h: Harness) -> None:
    """A plain XADD repeats a read applied before the newest snapshot (the item was
    marked unread since): live dead-letters the copy, the item stays unread; replay from
    the snapshot, from the start, and the inbox as of then decide the same (the
    snapshot, and the user's part of it, hold the record of event ids)."""
    from herald.streams import codec

    h.start_projector()
    user = USERS[1]
    p = h.producer.partition(user)
    made = await h.publish(user, NotificationCreated(title="read, then unread"))
    read = h.producer.envelope(user, NotificationRead(notification_id=made.id))
    await h.redis.xadd(h.keys.stream(p), {"e": codec.encode(read)})
    await h.publish(user, NotificationUnread(notification_id=made.id))
    await h.projected(user)
    await Retention(h.settings, h.redis).step(p, force=True)  # snapshot, archive, trim
    copy = (await h.redis.xadd(h.keys.stream(p), {"e": codec.encode(read)})).decode()
    await h.publish(user, NotificationCreated(title="after"))
    await h.projected(user)
    live = [(i["title"], i["read_at"]) for i in (await h.queries.page(user, limit=100)).items]
    assert live == [("after", None), ("read, then unread", None)]
    letters = await h.redis.xrange(h.keys.dead_letters(p))
    assert [f[b"position"].decode() for _, f in letters] == [copy]
    for from_start in (False, True):
        report = await Verifier(h.redis, h.settings, from_start=from_start).run([p])
        assert report.identical, report.differences
    page, _ = await InboxAsOf(h.redis, h.settings).page(user, copy, limit=100)
    assert [(i["title"], i["read_at"]) for i in page.items] == live[1:]
