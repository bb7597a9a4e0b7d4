"""SSE end to end: latency, gapless resume (also across an API restart), fan-out to
many clients, every message type, resets, and the Last-Event-ID rules."""

from __future__ import annotations

import asyncio
import time

import pytest

from herald.api.live.sse import RETRY_MS
from herald.streams.settings import Settings
from tests.api.live.conftest import LiveClient, running_live

pytestmark = pytest.mark.usefixtures("projector")


@pytest.mark.cluster
async def test_a_publish_arrives_within_a_second(live: LiveClient) -> None:
    async with live.sse("alice") as stream:
        ready = await stream.next()
        assert ready.event == "ready" and ready.data["unread_count"] == 0
        assert ready.data["resumed"] is False and ready.id == ready.data["position"]
        started = time.monotonic()
        published = await live.publish("alice", "你好, Alice", body="first")
        event = await stream.next(within=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert event.event == "item.created" and event.id == published.body["position"]
    item = event.data["item"]
    assert item["id"] == published.body["id"] and item["title"] == "你好, Alice"
    assert item["read_at"] is None and event.data["unread_count"] == 1


async def test_stream_starts_with_a_retry_hint(live: LiveClient) -> None:
    async with live.sse("alice") as stream:
        first = await stream.response.content.readline()
    assert first.decode().strip() == f"retry: {RETRY_MS}"


@pytest.mark.cluster
async def test_reconnect_with_last_event_id_gets_exactly_the_missed_ones(
        live: LiveClient) -> None:
    async with live.sse("bob") as stream:
        await stream.until("ready")
        await live.publish("bob", "before")
        seen = await stream.next()
        assert seen.data["item"]["title"] == "before"
        last_id = stream.last_id
    missed = [await live.publish("bob", f"missed {n}") for n in range(3)]
    await live.publish("carol", "someone else's")  # same log, other user: never shown
    # Projected before the reconnect (what was projected by then comes before "ready"):
    # a long-poll for an item newer than the second missed one answers once the third is.
    projected = await live.get(f"/v1/users/bob/inbox?after={missed[1].body['position']}&wait=5")
    assert [i["title"] for i in projected.body["items"]] == ["missed 2"]
    async with live.sse("bob", last_id=last_id) as stream:
        got = [await stream.next() for _ in range(3)]
        ready = await stream.next()
        later = await stream.quiet(0.3)
    assert [e.event for e in got] == ["item.created"] * 3
    assert [e.data["item"]["title"] for e in got] == ["missed 0", "missed 1", "missed 2"]
    assert [e.id for e in got] == [p.body["position"] for p in missed]
    assert ready.event == "ready" and ready.data["resumed"] is True
    assert ready.data["replayed"] == 3 and ready.data["unread_count"] == 4
    assert later == []


async def test_resume_survives_an_api_restart(live_settings: Settings) -> None:
    async with running_live(live_settings) as first:
        async with first.sse("dora") as stream:
            await stream.until("ready")
            await first.publish("dora", "one")
            await stream.next()
            last_id = stream.last_id
    async with running_live(live_settings) as publisher:
        titles = ["two", "three", "four"]
        for title in titles:
            await publisher.publish("dora", title)
    async with running_live(live_settings) as second, \
            second.sse("dora", last_id=last_id) as stream:
        got = [await stream.next() for _ in range(3)]
        assert (await stream.next()).event == "ready"
        await second.publish("dora", "five")
        live_one = await stream.next()
    assert [e.data["item"]["title"] for e in got] == titles
    assert live_one.data["item"]["title"] == "five"


async def test_query_since_resumes_and_last_event_id_wins(live: LiveClient) -> None:
    first = await live.publish("erin", "a")
    second = await live.publish("erin", "b")
    await live.publish("erin", "c")
    await asyncio.sleep(0.3)  # projected
    async with live.sse("erin", since=first.body["position"]) as stream:
        titles = [(await stream.next()).data["item"]["title"] for _ in range(2)]
    assert titles == ["b", "c"]
    async with live.sse("erin", since=first.body["position"],
                        last_id=second.body["position"]) as stream:
        event = await stream.next()
    assert event.data["item"]["title"] == "c"


async def test_hundred_clients_of_one_user_all_receive(live: LiveClient) -> None:
    async with contextlib_stack(live, "frank", 100) as streams:
        for s in streams:
            assert (await s.next()).event == "ready"
        published = await live.publish("frank", "to everyone")
        events = await asyncio.gather(*(s.next(within=2.0) for s in streams))
    assert len(events) == 100
    assert {e.id for e in events} == {published.body["position"]}
    assert all(e.data["item"]["title"] == "to everyone" for e in events)


def contextlib_stack(live: LiveClient, user: str, count: int):  # type: ignore[no-untyped-def]
    import contextlib

    @contextlib.asynccontextmanager
    async def stack():  # type: ignore[no-untyped-def]
        async with contextlib.AsyncExitStack() as exits:
            token = live.token(user)
            streams = await asyncio.gather(*(exits.enter_async_context(
                live.sse(user, token=token)) for _ in range(count)))
            yield list(streams)

    return stack()


async def test_a_unicode_user_gets_live_push(live: LiveClient) -> None:
    from urllib.parse import quote

    user = "张三 / ops"
    async with live.sse(quote(user, safe=""), token=live.token(user)) as stream:
        await stream.until("ready")
        published = await live.publish(user, "你好")
        event = await stream.next(within=3.0)
    assert event.event == "item.created" and event.data["item"]["id"] == published.body["id"]


async def test_a_tenants_user_gets_only_their_own_live_push(live_settings: Settings) -> None:
    from herald.api.auth import mint_token
    from tests.api.conftest import SECRET

    settings = live_settings.replace(api_keys=(*live_settings.api_keys, "acme:acme-key-0123"))
    async with running_live(settings) as live:
        token = mint_token(SECRET, "alice", 600, tenant="acme")
        async with live.sse("me", token=token) as stream:
            await stream.until("ready")
            await live.publish("alice", "the default tenant's alice")  # another user
            mine = await live.post("/v1/notifications", auth="acme-key-0123",
                                   json={"user": "alice", "title": "acme's"})
            event = await stream.next(within=3.0)
        assert event.event == "item.created" and event.data["item"]["id"] == mine.body["id"]
