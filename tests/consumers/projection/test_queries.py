"""Inbox queries: filters, cursors, after, limits, ownership, read-your-writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.consumers.projection.queries import InboxQueries
from herald.streams.errors import ValidationError
from herald.streams.events import NotificationArchived, NotificationCreated, NotificationRead
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.helpers import start_projector, wait_projected


@pytest.fixture
async def filled(redis: Any, settings: Settings) -> Any:
    """12 items for alice (2 read, 1 archived) and 1 for bob, projected by a runtime."""
    producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
    envs = [producer.envelope("alice", NotificationCreated(title=f"n{i}", data={"i": i}))
            for i in range(12)]
    appended = await producer.publish_many(envs)
    appended += await producer.publish_many([
        producer.envelope("alice", NotificationRead(notification_id=envs[3].id)),
        producer.envelope("alice", NotificationRead(notification_id=envs[5].id)),
        producer.envelope("alice", NotificationArchived(notification_id=envs[7].id)),
        producer.envelope("bob", NotificationCreated(title="bob's")),
    ])
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    await wait_projected(queries, appended)
    yield queries, producer, envs, appended, stop
    stop.set()
    await task


async def test_pages_walk_newest_first_without_gaps(filled: Any) -> None:
    queries, *_ = filled
    seen, cursor = [], None
    while True:
        page = await queries.page("alice", limit=5, cursor=cursor)
        seen += [i["title"] for i in page.items]
        assert page.unread_count == 9
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"n{i}" for i in range(11, -1, -1)]
    first = (await queries.page("alice", limit=1)).items[0]
    assert first["data"] == {"i": 11} and first["created_at"].endswith("Z")
    assert set(first) == {"id", "category", "title", "body", "data", "created_at", "read_at",
                          "archived", "position", "seen", "snoozed_until", "expires_at"}


async def test_filters(filled: Any) -> None:
    queries, *_ = filled
    titles = {s: [i["title"] for i in (await queries.page("alice", status=s, limit=100)).items]
              for s in ("unread", "read", "archived", "all")}
    assert titles["read"] == ["n5", "n3"]
    assert titles["archived"] == ["n7"]
    assert len(titles["unread"]) == 9 and "n7" not in titles["unread"]
    assert len(titles["all"]) == 12
    assert await queries.unread_count("alice") == 9
    assert await queries.unread_count("nobody") == 0


async def test_after_keeps_only_newer_items(filled: Any) -> None:
    queries, *_ = filled
    items = (await queries.page("alice", limit=100)).items
    pivot = items[4]["position"]
    newer = (await queries.page("alice", limit=100, after=pivot)).items
    assert [i["title"] for i in newer] == [i["title"] for i in items[:4]]
    assert (await queries.page("alice", after=items[0]["position"])).items == []


async def test_item_belongs_to_its_user(filled: Any) -> None:
    queries, _, envs, *_ = filled
    item = await queries.item("alice", envs[3].id)
    assert item is not None and item["read_at"] is not None and item["title"] == "n3"
    assert await queries.item("bob", envs[3].id) is None
    assert await queries.item("alice", "not-an-id") is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": True}, "limit"),
    ({"status": "new"}, "status"), ({"cursor": "abc"}, "cursor"), ({"after": "1-x"}, "after"),
])
async def test_bad_arguments_are_validation_errors(
    redis: Any, settings: Settings, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await InboxQueries(redis, settings).page("alice", **kwargs)
    assert info.value.field == field


async def test_wait_for_is_read_your_writes_and_bounded(filled: Any) -> None:
    queries, producer, *_ , stop = filled
    appended = await producer.publish(producer.envelope("carol", NotificationCreated(title="x")))
    assert await queries.wait_for(appended.partition, appended.position, 5.0)
    assert (await queries.page("carol")).items[0]["title"] == "x"
    assert await queries.last_change("carol") == appended.position
    stop.set()
    await asyncio.sleep(0.3)  # the projector stops
    later = await producer.publish(producer.envelope("carol", NotificationCreated(title="y")))
    t0 = asyncio.get_running_loop().time()
    assert not await queries.wait_for(later.partition, later.position, 0.2)
    assert asyncio.get_running_loop().time() - t0 < 1.0
