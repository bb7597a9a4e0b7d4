"""Publishing over HTTP: the events that land in the log, idempotency, batches."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from herald.streams import codec, sealing
from herald.streams.codec import ENTRY_FIELD
from herald.streams.events import (
    DigestItemAdded,
    Envelope,
    NotificationCreated,
    NotificationScheduled,
)
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient


async def log_of(redis: Any, settings: Settings, user: str) -> list[tuple[str, Envelope]]:
    """Every event of ``user``'s partition stream, decoded and opened (its sealed
    fields back: streams/sealing.py), with its position."""
    stream = Keys(settings.prefix).stream(partition_for(user, settings.partitions))
    entries = await redis.xrange(stream)
    store = KeyStore(redis, settings)
    out = []
    for pos, fields in entries:
        opened = await sealing.opened(store, codec.decode(fields[ENTRY_FIELD]))
        assert opened is not None
        out.append((pos.decode(), opened))
    return out


async def test_publish_appends_a_created_event(api: ApiClient, redis: Any) -> None:
    answer = await api.post("/v1/notifications", json={
        "user": "alice", "title": "订单已发货", "body": "您的包裹正在路上 🚚", "category": "orders",
        "data": {"order": 42, "tags": ["a", "b"], "nested": {"x": None}},
        "channels": ["in_app", "email"], "recipients": {"email": "a@example.com"}})
    assert answer.status == 201, answer.body
    assert answer.body["kind"] == "created" and answer.body["duplicate"] is False
    [(position, env)] = await log_of(redis, api.settings, "alice")
    assert (env.id, position) == (answer.body["id"], answer.body["position"])
    assert env.user == "alice"
    assert isinstance(env.payload, NotificationCreated)
    assert env.payload.title == "订单已发货" and env.payload.body == "您的包裹正在路上 🚚"
    assert env.payload.data == {"order": 42, "tags": ["a", "b"], "nested": {"x": None}}
    assert env.payload.channels == ("in_app", "email")
    assert env.payload.recipients == {"email": "a@example.com"}


async def test_idempotency_key_answers_the_first_append(api: ApiClient, redis: Any) -> None:
    body = {"user": "bob", "title": "once", "idempotency_key": "order-42-shipped"}
    first = await api.post("/v1/notifications", json=body)
    again = await api.post("/v1/notifications", json=body)
    assert (first.status, again.status) == (201, 200)
    assert again.body["id"] == first.body["id"]
    assert again.body["position"] == first.body["position"]
    assert again.body["duplicate"] is True
    # The same key with another payload: refused, naming the first append.
    other = await api.post("/v1/notifications", json={**body, "title": "twice?"})
    assert other.status == 409, other.body
    assert other.body["first_id"] == first.body["id"]
    assert other.body["type"] == "urn:herald:problem:conflict"
    assert len(await log_of(redis, api.settings, "bob")) == 1


async def test_delay_and_deliver_at_schedule(api: ApiClient, redis: Any) -> None:
    before = time.time() * 1000
    delayed = await api.publish("carol", "soon", delay_seconds=90, cancel_key="remind-1")
    due = datetime.fromtimestamp(int(time.time()) + 2 * 86400, timezone(timedelta(hours=8)))
    at = await api.publish("carol", "later", deliver_at=due.isoformat())
    assert delayed.body["kind"] == at.body["kind"] == "scheduled"
    events = [env.payload for _, env in await log_of(redis, api.settings, "carol")]
    assert all(isinstance(p, NotificationScheduled) for p in events)
    first, second = events
    assert isinstance(first, NotificationScheduled) and isinstance(second, NotificationScheduled)
    assert before + 90_000 <= first.deliver_at <= time.time() * 1000 + 90_000
    assert first.cancel_key == "remind-1"
    assert second.deliver_at == int(due.timestamp()) * 1000


async def test_digest_key_collects_into_an_aligned_window(api: ApiClient, redis: Any) -> None:
    one = await api.publish("dave", "a like", digest_key="likes", digest_window_seconds=600)
    two = await api.publish("dave", "another", digest_key="likes", digest_window_seconds=600)
    assert one.body["kind"] == two.body["kind"] == "digest"
    payloads = [env.payload for _, env in await log_of(redis, api.settings, "dave")]
    assert all(isinstance(p, DigestItemAdded) for p in payloads)
    ends = {p.window_end for p in payloads if isinstance(p, DigestItemAdded)}
    assert len(ends) == 1 or max(ends) - min(ends) == 600_000  # both in one window, or a boundary
    assert all(end % 600_000 == 0 and end > time.time() * 1000 - 1000 for end in ends)


async def test_batch_gives_per_item_results(api: ApiClient, redis: Any) -> None:
    items = [
        {"user": "erin", "title": "one"},
        {"user": "erin", "title": ""},
        {"user": "frank", "title": "two", "idempotency_key": "k-1"},
        {"user": "frank", "title": "two", "idempotency_key": "k-1"},
        {"user": "erin", "title": "three", "channels": ["pigeon"]},
        {"user": "erin", "title": "x", "colour": "red"},
        {"user": "erin", "title": "四", "delay_seconds": 5},
        {"user": "frank", "title": "two again", "idempotency_key": "k-1"},
    ]
    answer = await api.post("/v1/notifications/batch", json={"notifications": items})
    assert answer.status == 200, answer.body
    results = answer.body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [201, 422, 201, 200, 422, 422, 201, 409]
    assert results[7]["first_id"] == results[2]["id"]
    assert results[3]["id"] == results[2]["id"] and results[3]["duplicate"] is True
    assert {e["path"] for e in results[1]["errors"]} == {"title"}
    assert {e["path"] for e in results[4]["errors"]} == {"channels.0"}
    assert results[6]["kind"] == "scheduled"
    assert {e["path"] for e in results[5]["errors"]} == {"colour"}
    assert (answer.body["created"], answer.body["duplicates"], answer.body["failed"]) == (3, 1, 4)
    erin = [env for _, env in await log_of(redis, api.settings, "erin")]
    assert [e.payload.title for e in erin] == ["one", "四"]  # type: ignore[attr-defined]
    assert len(await log_of(redis, api.settings, "frank")) == 1


async def test_batch_limits(api: ApiClient, api_settings: Settings) -> None:
    too_many = [{"user": "u", "title": "t"}] * (api_settings.max_batch + 1)
    answer = await api.post("/v1/notifications/batch", json={"notifications": too_many})
    assert answer.status == 422
    assert {e["path"] for e in answer.body["errors"]} == {"notifications"}
    answer = await api.post("/v1/notifications/batch", json={"notifications": []})
    assert answer.status == 422
    # Items that are not even objects fail the whole batch (the documented shape).
    answer = await api.post("/v1/notifications/batch",
                            json={"notifications": [{"user": "u", "title": "t"}, "text"]})
    assert answer.status == 422
    assert {e["path"] for e in answer.body["errors"]} == {"notifications.1"}


async def test_full_batch_of_1000(api: ApiClient, api_settings: Settings) -> None:
    """A full batch may be bigger than HERALD_MAX_BODY (it has its own, larger limit)."""
    items = [{"user": f"user-{i % 37}", "title": f"n{i}", "body": "正文" * 200}
             for i in range(1000)]
    size = len(orjson.dumps({"notifications": items}))
    assert api_settings.max_body_bytes < size < api_settings.max_batch_body_bytes
    answer = await api.post("/v1/notifications/batch", json={"notifications": items})
    assert answer.status == 200 and answer.body["created"] == 1000
    ids = [r["id"] for r in answer.body["results"]]
    assert len(set(ids)) == 1000
    huge = [{"user": "u", "title": "t", "body": "x" * 4900}] * 1000  # about 4.9 MB
    answer = await api.post("/v1/notifications/batch", json={"notifications": huge})
    assert answer.status == 413


async def test_published_events_are_counted(api: ApiClient) -> None:
    await api.publish("henry", "x")
    await api.publish("henry", "y", delay_seconds=3)
    text = (await api.get("/metrics", auth=None)).raw.decode()
    assert 'herald_events_published_total{type="notification.created"} 1.0' in text
    assert 'herald_events_published_total{type="notification.scheduled"} 1.0' in text
