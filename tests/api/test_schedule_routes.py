"""DELETE /v1/scheduled/{cancel_key} and scheduling through the API, end to end."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs

from herald.api.routes_schedule import schemas
from herald.streams import codec
from herald.streams.codec import ENTRY_FIELD
from herald.streams.events import Envelope, NotificationCreated, ScheduleCancelled
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_api, running_role


async def log_of(redis: Any, settings: Settings, user: str) -> list[Envelope]:
    stream = Keys(settings.prefix).stream(partition_for(user, settings.partitions))
    return [codec.decode(f[ENTRY_FIELD]) for _, f in await redis.xrange(stream)]


async def inbox_titles(api: ApiClient, user: str) -> list[str]:
    answer = await api.get(f"/v1/users/{user}/inbox")
    assert answer.status == 200, answer.body
    return [item["title"] for item in answer.body["items"]]


async def until(check: Any, within_s: float = 10.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def matches_document(body: Any, settings: Settings) -> bool:
    return bool(jsonschema_rs.Draft202012Validator(
        schemas(settings)["ScheduleCancelled"]).is_valid(body))


async def test_nothing_scheduled_under_a_key_is_404(api: ApiClient) -> None:
    answer = await api.delete("/v1/scheduled/no-such-key")
    assert answer.status == 404 and answer.content_type == "application/problem+json"
    assert "no-such-key" in answer.body["detail"]


async def test_cancel_without_user_finds_every_user_through_the_route(
    api: ApiClient, redis: Any, projector: None
) -> None:
    for user in ("alice", "bob"):
        await api.publish(user, "pay soon", delay_seconds=60, cancel_key="order-9:unpaid")
    await api.publish("carol", "other key", delay_seconds=60, cancel_key="order-10:unpaid")
    answer = await api.delete("/v1/scheduled/order-9:unpaid")
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "projected" and answer.body["count"] == 2
    assert [c["user"] for c in answer.body["cancelled"]] == ["alice", "bob"]
    assert matches_document(answer.body, api.settings)
    keys = Keys(api.settings.prefix)
    for entry in answer.body["cancelled"]:
        events = await log_of(redis, api.settings, entry["user"])
        assert events[-1].payload == ScheduleCancelled(cancel_key="order-9:unpaid")
        tomb = keys.cancel_tombstone(entry["partition"], entry["user"], "order-9:unpaid")
        assert (await redis.get(tomb)).decode() == entry["position"]
    carol = [e for e in await log_of(redis, api.settings, "carol") if e.user == "carol"]
    assert not [e for e in carol if isinstance(e.payload, ScheduleCancelled)]


async def test_cancel_with_user_skips_the_lookup(api_settings: Settings, redis: Any) -> None:
    async with running_api(api_settings.replace(action_wait_s=0.2)) as api:
        answer = await api.delete("/v1/scheduled/remind-7?user=gina")
    # No projector runs: logged (and already effective through the tombstone), not projected.
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "accepted" and answer.body["user"] == "gina"
    assert answer.body["count"] == 1
    events = await log_of(redis, api_settings, "gina")
    assert events[-1].payload == ScheduleCancelled(cancel_key="remind-7")
    assert answer.body["position"] == answer.body["cancelled"][0]["position"]
    assert matches_document(answer.body, api_settings)


async def test_schedules_already_long_due_are_not_found(api: ApiClient) -> None:
    past = datetime.fromtimestamp(time.time() - 600, tz=UTC).isoformat()
    await api.publish("hank", "was due", deliver_at=past, cancel_key="old-key")
    assert (await api.delete("/v1/scheduled/old-key")).status == 404


async def test_paid_order_cancelled_through_the_api_sends_nothing(
    api: ApiClient, redis: Any, projector: None
) -> None:
    async with running_role("scheduler", api.settings, redis):
        await api.publish("ivy", "Order 5 placed")
        paid = await api.publish("ivy", "Order 5: pay now", delay_seconds=1,
                                 cancel_key="order-5", channels=["in_app", "sms"])
        unpaid = await api.publish("ivy", "Order 6: pay now", delay_seconds=1,
                                   cancel_key="order-6")
        assert (await api.delete("/v1/scheduled/order-5")).status == 200
        await until(lambda: _has_created(redis, api.settings, "ivy", unpaid.body["id"]))
        await asyncio.sleep(0.3)
        events = await log_of(redis, api.settings, "ivy")
        assert not [e for e in events if isinstance(e.payload, NotificationCreated)
                    and e.payload.notification_id == paid.body["id"]]
        titles = await until(lambda: _titles_when(api, "ivy", 2))
        assert titles == ["Order 6: pay now", "Order 5 placed"]


async def test_digest_published_through_the_api_arrives_as_one_item(
    api: ApiClient, redis: Any, projector: None
) -> None:
    async with running_role("scheduler", api.settings, redis):
        # One batch: the three share the window whatever the machine's load (three
        # requests one after another could straddle a 1 s window under CI load).
        answer = await api.post("/v1/notifications/batch", json={"notifications": [
            {"user": "jo", "title": f"#{rank} in today's ranking", "digest_key": "ranking",
             "digest_window_seconds": 1, "data": {"rank": rank}} for rank in range(1, 4)]})
        assert answer.status in (200, 201, 207), answer.body
        titles = await until(lambda: _titles_when(api, "jo", 1))
        assert titles[0].startswith("3 updates: #1 in today's ranking")


async def _has_created(redis: Any, settings: Settings, user: str, nid: str) -> bool:
    return any(isinstance(e.payload, NotificationCreated) and e.payload.notification_id == nid
               for e in await log_of(redis, settings, user))


async def _titles_when(api: ApiClient, user: str, count: int) -> list[str] | None:
    titles = await inbox_titles(api, user)
    return titles if len(titles) >= count else None


async def test_a_scheduled_notification_has_its_status_from_acceptance(
    api: ApiClient, redis: Any, projector: None
) -> None:
    published = await api.publish("kim", "later", delay_seconds=600, cancel_key="kim-1")
    nid = published.body["id"]
    status = await api.get(f"/v1/notifications/{nid}")  # right away: no wait, no retry
    assert status.status == 200, status.body
    assert status.body["status"] == "scheduled" and status.body["scheduled_for"] is not None
    assert status.body["channels"] == {"in_app": {"state": "scheduled"}}
    assert (await api.delete("/v1/scheduled/kim-1")).status == 200
    cancelled = await api.get(f"/v1/notifications/{nid}")
    assert cancelled.body["status"] == "cancelled" and cancelled.body["cancelled_at"]
    assert cancelled.body["channels"] == {"in_app": {"state": "cancelled"}}


async def test_a_dropped_schedule_stays_cancelled(
    api: ApiClient, redis: Any, projector: None
) -> None:
    async with running_role("scheduler", api.settings, redis):
        published = await api.publish("lou", "soon", delay_seconds=0.5, cancel_key="lou-1")
        nid = published.body["id"]
        assert (await api.delete("/v1/scheduled/lou-1")).status == 200

        async def dropped() -> Any:
            answer = await api.get(f"/v1/notifications/{nid}")
            return answer if answer.status == 200 and answer.body["scheduled_for"] is None \
                else None

        answer = await until(dropped)
    assert answer.body["status"] == "cancelled" and answer.body["user"] == "lou"


async def test_a_snoozed_item_is_woken_by_the_scheduler(
    api: ApiClient, redis: Any, projector: None
) -> None:
    async with running_role("scheduler", api.settings, redis):
        nid = (await api.publish("max", "later please")).body["id"]
        await until(lambda: _titles_when(api, "max", 1))
        assert (await api.post(f"/v1/users/max/inbox/{nid}/read")).status == 200
        snoozed = await api.post(f"/v1/users/max/inbox/{nid}/snooze", json={"seconds": 1})
        assert snoozed.status == 200, snoozed.body
        assert await inbox_titles(api, "max") == []

        async def back() -> Any:
            page = (await api.get("/v1/users/max/inbox")).body
            return page if page["items"] else None

        page = await until(back)
    [item] = page["items"]
    assert item["id"] == nid and item["read_at"] is None and item["snoozed_until"] is None
    assert page["unread_count"] == 1 and page["unseen_count"] == 1
    woke = [e for e in await log_of(redis, api.settings, "max") if e.type == "notification.woke"]
    assert len(woke) == 1
