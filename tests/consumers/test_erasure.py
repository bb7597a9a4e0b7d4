"""Erasure end to end: the user's state goes, their content is unreadable everywhere,
other users are untouched, replay ends where live did, a new life starts clean."""

from __future__ import annotations

import pytest
import zstandard

from herald.consumers.delivery.queries import DeliveryQueries
from herald.consumers.replay.verify import Verifier
from herald.consumers.retention.role import Retention
from herald.streams import sealing
from herald.streams.archive import open_storage
from herald.streams.erasure import erase_user
from herald.streams.events import (
    DigestItemAdded,
    NotificationCreated,
    NotificationScheduled,
    PreferencesChanged,
    ProfileChanged,
)
from tests.consumers.helpers.harness import Harness, now_ms

SECRET = "订单 A-7731 已发货 ERASE-ME"


async def _raw_values(h: Harness) -> bytes:
    """Every byte of every key under the test's prefix, the streams included."""
    out = []
    async for key in h.redis.scan_iter(match=f"{h.settings.prefix}:*", count=1000):
        kind = (await h.redis.type(key)).decode()
        if kind == "string":
            out.append(await h.redis.get(key) or b"")
        elif kind == "hash":
            out += [k + v for k, v in (await h.redis.hgetall(key)).items()]
        elif kind == "zset":
            out += await h.redis.zrange(key, 0, -1)
        elif kind == "set":
            out += list(await h.redis.smembers(key))
        elif kind == "stream":
            out += [b"".join(f.values()) for _, f in await h.redis.xrange(key)]
    return b"|".join(out)


@pytest.mark.cluster
async def test_erase_removes_the_user_and_leaves_nothing_readable(h: Harness) -> None:
    h.start_projector()
    later = now_ms() + 3_600_000
    created = await h.publish("alice", NotificationCreated(title=SECRET, body=SECRET,
                                                           data={"note": SECRET}))
    scheduled = await h.publish("alice", NotificationScheduled(title=SECRET, deliver_at=later,
                                                               cancel_key="order-7731"))
    await h.publish("alice", DigestItemAdded(title=SECRET, digest_key="daily",
                                             window_end=later))
    await h.publish("alice", ProfileChanged(phone="+8613800007731", email="alice@example.com"))
    await h.publish("alice", PreferencesChanged(preferences={"*": {"sms": False}}))
    kept = await h.publish("bob", NotificationCreated(title="bob keeps this"))
    await h.projected("alice")
    await h.projected("bob")
    page = await h.queries.page("alice")
    assert [i["title"] for i in page.items] == [SECRET]  # readable before
    assert SECRET.encode() not in await _raw_values(h)  # never in clear at rest
    delivery = DeliveryQueries(h.redis, h.settings)
    assert (await delivery.profile("alice"))["phone"] == "+8613800007731"

    retention = Retention(h.settings, h.redis)
    for p in range(h.settings.partitions):  # snapshot, archive and trim before erasing
        await retention.step(p, force=True)

    _, had_key = await erase_user(h.producer, "alice")
    assert had_key
    await h.projected("alice")
    for p in range(h.settings.partitions):  # and after: the new snapshot forgets alice
        await retention.step(p, force=True)
    storage = open_storage(h.settings.archive_location)
    files = [await storage.get(name) for name in await storage.list("")]
    assert len(files) >= 3  # snapshots (before and after) and segments
    for data in files:  # snapshots and segments: compressed, so look at their records
        body = zstandard.ZstdDecompressor().decompress(data[12 + int.from_bytes(data[8:12],
                                                                             "big"):])
        assert SECRET.encode() not in body and b"8613800007731" not in body
    p = h.producer.partition("alice")
    latest = await retention.snapshots.latest(p)
    assert latest is not None
    names = [record[0] for record in await retention.snapshots.read(latest)]
    assert not [n for n in names if n.endswith(":alice") or ":alice:" in n]

    page = await h.queries.page("alice")
    assert page.items == [] and page.unread_count == 0
    assert await h.queries.item("alice", created.id) is None
    assert (await delivery.profile("alice"))["phone"] is None
    assert (await delivery.preferences("alice"))["preferences"] == {}
    due, digests = await h.schedule_state("alice")
    assert scheduled.id.encode() not in [m for m, _ in due] and digests["digests_due"] == []
    p = h.producer.partition("alice")
    for key in (h.keys.user_schedules(p, "alice"), h.keys.user_digests(p, "alice"),
                h.keys.digest(p, "alice", "daily"), h.keys.inbox(p, "alice")):
        assert not await h.redis.exists(key)
    assert await h.queries.last_change("alice") is None  # no key names alice any more
    # Every sealed copy left in the log is unreadable: the data key is gone.
    for _, env in await h.log("alice"):
        if env.user == "alice" and env.sealed is not None:
            assert await sealing.opened(h.producer.data_keys, env) is None
    # Bob is untouched.
    assert [i["title"] for i in (await h.queries.page("bob")).items] == ["bob keeps this"]
    assert (await h.queries.item("bob", kept.id)) is not None

    report = await Verifier(h.redis, h.settings).run()  # replay honours the erasure
    assert report.identical, report.differences

    # A new life: a fresh key, readable content, nothing of the old one.
    again = await h.publish("alice", NotificationCreated(title="welcome back"))
    await h.projected("alice")
    assert [i["title"] for i in (await h.queries.page("alice")).items] == ["welcome back"]
    assert (await h.log("alice"))[-1][1].id == again.id


async def test_erasing_twice_or_an_unknown_user_is_harmless(h: Harness) -> None:
    h.start_projector()
    _, had_key = await erase_user(h.producer, "nobody")
    assert not had_key
    await h.publish("carol", NotificationCreated(title="hi"))
    await erase_user(h.producer, "carol")
    _, again = await erase_user(h.producer, "carol")
    assert not again
    await h.projected("carol")
    assert (await h.queries.page("carol")).items == []
