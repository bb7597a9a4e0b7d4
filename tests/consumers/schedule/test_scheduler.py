"""Reminders end to end on a real server: fire once, cancel wins, crashes and races."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from herald.streams.events import NotificationCreated, NotificationScheduled
from tests.consumers.helpers.harness import Harness, eventually, now_ms

# The seed scenario, scaled down: the order's payment deadline is DEADLINE_S ahead and the
# reminder is due REMIND_BEFORE_S before it (15 minutes in production).
DEADLINE_S, REMIND_BEFORE_S = 2.0, 1.0


async def _order_with_reminder(h: Harness, user: str, order: str) -> str:
    await h.publish(user, NotificationCreated(title=f"Order {order} placed", category="orders"))
    due = now_ms() + int((DEADLINE_S - REMIND_BEFORE_S) * 1000)
    scheduled = await h.publish(user, NotificationScheduled(
        title=f"Order {order}: pay within 15 minutes", category="orders",
        channels=("in_app", "sms"), deliver_at=due, cancel_key=f"{order}:unpaid"))
    return scheduled.id


@pytest.mark.cluster
async def test_unpaid_order_gets_exactly_one_reminder(h: Harness) -> None:
    h.start_projector()
    h.start_scheduler("s1")
    started = now_ms()
    nid = await _order_with_reminder(h, "alice", "o-1")
    item = await eventually(lambda: h.queries.item("alice", nid))
    assert item["title"] == "Order o-1: pay within 15 minutes"
    [(position, env)] = await h.created_for("alice", nid)
    assert int(position.split("-")[0]) >= started + (DEADLINE_S - REMIND_BEFORE_S) * 1000 - 5
    assert env.payload.channels == ("in_app", "sms")  # type: ignore[attr-defined]
    await h.projected("alice")
    due, _ = await h.schedule_state("alice")
    assert due == []  # the projector removed the fired entry
    page = await h.queries.page("alice")
    assert [i["title"] for i in page.items] == ["Order o-1: pay within 15 minutes",
                                                "Order o-1 placed"]


@pytest.mark.cluster
async def test_an_idle_scheduler_sleeps_until_something_is_due(h: Harness) -> None:
    """No polling while nothing is due; a reminder projected meanwhile wakes it (the
    projector's signal) well before its longest sleep (IDLE_MAX_S) would."""
    from herald.consumers.schedule.scheduler import IDLE_MAX_S, POLL_INTERVAL_S

    h.start_projector()
    scheduler = h.start_scheduler("s1")
    await eventually(lambda: _as_true(len(scheduler.leases.owned) == h.settings.partitions))
    await asyncio.sleep(0.5)
    before = scheduler.ticks
    await asyncio.sleep(1.5)
    assert scheduler.ticks - before <= 1, "polling while idle"  # polling: 1.5 / 0.05 = 30
    assert POLL_INTERVAL_S * 30 <= 1.5 < IDLE_MAX_S
    started = now_ms()
    scheduled = await h.publish("alice", NotificationScheduled(
        title="soon", deliver_at=started + 1000))
    await eventually(lambda: h.queries.item("alice", scheduled.id), within_s=IDLE_MAX_S / 2)
    [(position, _env)] = await h.created_for("alice", scheduled.id)
    assert int(position.split("-")[0]) >= started + 1000 - 5  # never early


async def test_paid_order_cancels_and_nothing_is_created(h: Harness) -> None:
    h.start_projector()
    h.start_scheduler("s1")
    nid = await _order_with_reminder(h, "bob", "o-2")
    await h.publish("bob", NotificationCreated(title="Order o-2 paid", category="orders"))
    await h.canceller.cancel("bob", "o-2:unpaid")
    dropped = await eventually(lambda: h.dropped_for("bob", nid))  # the due time passed
    assert dropped[0][1].idempotency_key == f"fire:{nid}"
    await asyncio.sleep(0.3)  # more polls: still nothing
    assert await h.created_for("bob", nid) == []
    await h.projected("bob")
    assert await h.queries.item("bob", nid) is None
    due, _ = await h.schedule_state("bob")
    assert due == []  # the dropped event removed the entry
    assert [i["title"] for i in (await h.queries.page("bob")).items] == [
        "Order o-2 paid", "Order o-2 placed"]


async def test_cancel_while_the_projector_is_stopped_still_wins(h: Harness) -> None:
    h.start_projector()
    nid = await _order_with_reminder(h, "carol", "o-3")
    await h.projected("carol")
    await h.stop_projector()
    await h.canceller.cancel("carol", "o-3:unpaid")  # not projected: only the tombstone knows
    scheduler = h.start_scheduler("s1")
    await eventually(lambda: h.dropped_for("carol", nid), within_s=10)
    await eventually(lambda: _as_true(scheduler.counts["dropped"] == 1))
    assert scheduler.counts["fired"] == 0
    assert await h.created_for("carol", nid) == []
    h.start_projector()
    await h.projected("carol")
    assert await h.queries.item("carol", nid) is None
    p = h.producer.partition("carol")
    assert await h.redis.get(h.keys.schedule_cancelled(p, "carol", "o-3:unpaid")) is not None


async def test_a_schedule_after_the_cancel_reuses_the_key_and_fires(h: Harness) -> None:
    h.start_projector()
    h.start_scheduler("s1")
    due = now_ms() + 800
    first = await h.publish("dan", NotificationScheduled(title="one", deliver_at=due,
                                                         cancel_key="k"))
    await h.canceller.cancel("dan", "k")
    second = await h.publish("dan", NotificationScheduled(title="two", deliver_at=due,
                                                          cancel_key="k"))
    await eventually(lambda: h.queries.item("dan", second.id))
    await eventually(lambda: h.dropped_for("dan", first.id))
    assert await h.created_for("dan", first.id) == []
    assert len(await h.created_for("dan", second.id)) == 1


async def test_two_schedulers_and_a_crash_between_fire_and_projection(h: Harness) -> None:
    users = [f"u{i}" for i in range(40)]
    h.start_projector()
    due = now_ms() + 700
    ids = {}
    for i, user in enumerate(users):
        appended = await h.publish(user, NotificationScheduled(
            title=f"reminder {i}", deliver_at=due + 10 * i,
            cancel_key=None if i % 2 else f"c{i}"))
        ids[appended.id] = user
    for user in users:
        await h.projected(user)
    await h.stop_projector()  # fired entries stay in the projected schedule
    a = h.start_scheduler("a")

    async def all_fired() -> bool:
        return all([await h.created_for(u, nid) for nid, u in ids.items()])

    await eventually(all_fired, within_s=10)
    await h.crash_scheduler(a)  # after the fire, before any projection
    b = h.start_scheduler("b")  # takes the partitions when a's leases expire
    await eventually(lambda: _as_true(b.counts["duplicate"] >= len(ids)), within_s=10)
    h.start_projector()
    for nid, user in ids.items():
        assert len(await h.created_for(user, nid)) == 1
    for user in users:
        await h.projected(user)
    for nid, user in ids.items():
        assert (await h.queries.item(user, nid)) is not None
    assert b.counts["fired"] == 0
    for user in users:
        assert (await h.schedule_state(user))[0] == []


@pytest.mark.cluster
async def test_two_live_schedulers_share_partitions_and_one_crashes(h: Harness) -> None:
    h.start_projector()
    a, b = h.start_scheduler("a"), h.start_scheduler("b")
    start = now_ms() + 300
    ids = {}
    for i in range(120):
        user = f"w{i % 30}"
        appended = await h.publish(user, NotificationScheduled(
            title=f"r{i}", deliver_at=start + 15 * i))  # due over about 1.8 s
        ids[appended.id] = user
    await asyncio.sleep(0.9)
    await h.crash_scheduler(a)  # mid-way: b takes a's partitions when the leases expire

    async def done() -> bool:
        return all([await h.created_for(u, nid) for nid, u in ids.items()])

    await eventually(done, within_s=15)
    await asyncio.sleep(0.3)
    for nid, user in ids.items():
        assert len(await h.created_for(user, nid)) == 1
    assert a.counts["fired"] > 0 and b.counts["fired"] > 0


async def _as_true(value: bool) -> bool:
    return value


async def test_a_cancel_always_stops_the_scheduler(h: Harness) -> None:
    """A cancellation redis-py swallowed inside a command must still end the loops
    (consumers/aio.check_cancelled); cancel at many points of the poll and lease loops."""
    due = now_ms() + 60_000
    for i in range(20):
        await h.publish(f"x{i}", NotificationScheduled(title="later", deliver_at=due))
    h.start_projector()
    for i in range(20):
        await h.projected(f"x{i}")
    rng = random.Random(7)
    for _ in range(300):  # 300 cancels: without the checks this hung in 2 of 2 runs
        s = h.start_scheduler("s")
        await asyncio.sleep(rng.uniform(0, 0.01))
        await h.crash_scheduler(s)


@pytest.mark.parametrize("skew_s", [300, -300])
async def test_a_scheduler_with_a_skewed_clock_fires_at_the_servers_time(
        h: Harness, skew_s: int) -> None:
    """A worker whose clock is 5 minutes off fires a reminder once, when it is due by
    the server's clock: not 5 minutes early, not 5 minutes late."""
    import time_machine

    seconds, micros = await h.redis.time()
    due = int(seconds) * 1000 + int(micros) // 1000 + 1500  # by the server's clock
    scheduled = await h.publish("alice", NotificationScheduled(title="skewed",
                                                               deliver_at=due))
    h.start_projector()
    with time_machine.travel(time.time() + skew_s, tick=True):
        h.start_scheduler("skewed")
        item = await eventually(lambda: h.queries.item("alice", scheduled.id), within_s=8)
    assert item["title"] == "skewed"
    [(position, _env)] = await h.created_for("alice", scheduled.id)
    fired_ms = int(position.split("-")[0])  # the server's time of the append
    assert due <= fired_ms < due + 3000
