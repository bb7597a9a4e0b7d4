"""The routing index, cancel tombstones and the fire script's fence and dedupe (real server)."""

from __future__ import annotations

from typing import Any

import pytest

from herald.consumers.schedule.firing import GROUP, FireScript, reminder_fire
from herald.consumers.schedule.projection import entry
from herald.streams import codec, idempotency
from herald.streams.connection import connect_sync
from herald.streams.events import NotificationCreated, NotificationScheduled
from herald.streams.idempotency import IdempotencyRecords
from herald.streams.producer import SyncProducer
from herald.streams.schedule_cancel import GRACE_MS, HORIZON_MS, routed_users
from herald.streams.validation import Limits
from tests.consumers.helpers.harness import Harness, now_ms


async def test_the_producer_routes_keyed_schedules_before_appending(h: Harness) -> None:
    now = now_ms()
    await h.producer.publish_many([
        h.producer.envelope("ann", NotificationScheduled(title="a", deliver_at=now + 5000,
                                                         cancel_key="k1")),
        h.producer.envelope("ben", NotificationScheduled(title="b", deliver_at=now + 9000,
                                                         cancel_key="k1")),
        h.producer.envelope("cat", NotificationScheduled(title="c", deliver_at=now + 9000)),
        h.producer.envelope("cat", NotificationCreated(title="plain")),
    ])
    assert await routed_users(h.redis, h.keys, "k1", now) == {"ann": now + 5000,
                                                              "ben": now + 9000}
    left = await h.redis.pttl(h.keys.schedule_route("k1"))
    assert 9000 + GRACE_MS - 2000 < left <= 9000 + GRACE_MS
    # An earlier schedule keeps the latest due time (and the route's lifetime).
    await h.publish("ben", NotificationScheduled(title="b2", deliver_at=now + 1000,
                                                 cancel_key="k1"))
    assert (await routed_users(h.redis, h.keys, "k1", now))["ben"] == now + 9000
    assert await h.redis.pttl(h.keys.schedule_route("k1")) >= left - 2000
    assert await routed_users(h.redis, h.keys, "k1", now + 6000) == {"ben": now + 9000}


def test_the_sync_producer_routes_too(h: Harness) -> None:
    client = connect_sync(h.settings)
    try:
        producer = SyncProducer(client, h.settings)
        due = now_ms() + 4000
        producer.publish(producer.envelope("dee", NotificationScheduled(
            title="x", deliver_at=due, cancel_key="k2")))
        assert client.zscore(h.keys.schedule_route("k2"), "dee") == due
    finally:
        client.close()


async def test_a_tombstone_outlives_the_latest_due_time(h: Harness) -> None:
    p = h.producer.partition("eve")
    far = now_ms() + 2 * HORIZON_MS
    await h.canceller.cancel("eve", "far", latest_due=far)
    assert await h.redis.pttl(h.keys.cancel_tombstone(p, "eve", "far")) > 2 * HORIZON_MS
    appended = await h.canceller.cancel("eve", "near")
    tomb = h.keys.cancel_tombstone(p, "eve", "near")
    assert (await h.redis.get(tomb)).decode() == appended.position
    assert HORIZON_MS < await h.redis.pttl(tomb) <= HORIZON_MS + GRACE_MS
    # A later cancel moves the position forward and never shortens the lifetime.
    again = await h.canceller.cancel("eve", "far")
    assert (await h.redis.get(h.keys.cancel_tombstone(p, "eve", "far"))).decode() == \
        again.position
    assert await h.redis.pttl(h.keys.cancel_tombstone(p, "eve", "far")) > 2 * HORIZON_MS


async def _fire_of(h: Harness, user: str, cancel_key: str | None) -> Any:
    scheduled = h.producer.envelope(user, NotificationScheduled(
        title="t", deliver_at=1, cancel_key=cancel_key))
    appended = await h.producer.publish(scheduled)
    packed = codec.pack_value(entry(scheduled, appended.position))
    p = h.producer.partition(user)
    return p, scheduled.id, reminder_fire(h.keys, p, scheduled.id, packed, 1, now_ms(),
                                          Limits())


async def test_the_fire_script_is_fenced_and_deduplicated(h: Harness) -> None:
    p, nid, fire = await _fire_of(h, "fin", None)
    length = await h.redis.xlen(h.keys.stream(p))
    await h.redis.set(h.keys.lease(GROUP, p), "other")
    mine = FireScript(h.redis, IdempotencyRecords(h.keys, 60_000), "me")
    assert await mine.fire(p, [fire]) is None
    assert await h.redis.xlen(h.keys.stream(p)) == length
    await h.redis.set(h.keys.lease(GROUP, p), "me")
    [first] = await mine.fire(p, [fire])  # type: ignore[misc]
    [second] = await mine.fire(p, [fire])  # type: ignore[misc]
    assert (first.outcome, second.outcome) == ("fired", "duplicate")
    assert first.position == second.position
    assert await h.redis.xlen(h.keys.stream(p)) == length + 1
    assert len(await h.created_for("fin", nid)) == 1


async def test_the_fire_script_compares_tombstone_and_schedule_positions(h: Harness) -> None:
    _, before_id, before = await _fire_of(h, "gil", "k")
    await h.canceller.cancel("gil", "k")
    p, after_id, after = await _fire_of(h, "gil", "k")
    await h.redis.set(h.keys.lease(GROUP, p), "me")
    script = FireScript(h.redis, IdempotencyRecords(h.keys, 60_000), "me")
    outcomes = await script.fire(p, [before, after])
    assert outcomes is not None
    assert [o.outcome for o in outcomes] == ["dropped", "fired"]
    assert await h.created_for("gil", before_id) == []
    assert len(await h.dropped_for("gil", before_id)) == 1
    assert len(await h.created_for("gil", after_id)) == 1


async def test_the_fire_script_follows_the_servers_bucket(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, nid, fire = await _fire_of(h, "hal", None)
    await h.redis.set(h.keys.lease(GROUP, p), "me")
    script = FireScript(h.redis, IdempotencyRecords(h.keys, 60_000), "me")
    real = idempotency.now_ms
    monkeypatch.setattr(idempotency, "now_ms", lambda: real() - 10 * 60_000)  # 10 windows
    [first] = await script.fire(p, [fire])  # type: ignore[misc]
    monkeypatch.setattr(idempotency, "now_ms", real)
    [second] = await script.fire(p, [fire])  # type: ignore[misc]
    assert (first.outcome, second.outcome) == ("fired", "duplicate")
    assert len(await h.created_for("hal", nid)) == 1
