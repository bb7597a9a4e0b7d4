"""Every message type over SSE, resets, heartbeats that move the position, and the
WebSocket-free rules of Last-Event-ID."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.api.live.hub import HUB
from herald.streams.settings import Settings
from tests.api.live.conftest import LiveClient, running_live

pytestmark = pytest.mark.usefixtures("projector")


async def test_actions_arrive_as_changed_removed_and_read_all(live: LiveClient) -> None:
    a = (await live.publish("gina", "a")).body["id"]
    b = (await live.publish("gina", "b")).body["id"]
    c = (await live.publish("gina", "c")).body["id"]
    await asyncio.sleep(0.3)
    base = "/v1/users/gina/inbox"
    async with live.sse("gina") as stream:
        assert (await stream.next()).data["unread_count"] == 3
        assert (await live.post(f"{base}/{a}/read")).status == 200
        read = await stream.next()
        assert (await live.post(f"{base}/{b}/archive")).status == 200
        archived = await stream.next()
        assert (await live.delete(f"{base}/{a}")).status == 200
        removed = await stream.next()
        assert (await live.post(f"{base}/read_all")).status == 200
        all_read = await stream.next()
        assert (await live.post(f"{base}/{c}/unread")).status == 200
        unread = await stream.next()
    assert read.event == "item.changed" and read.data["item"]["id"] == a
    assert read.data["item"]["read_at"] is not None and read.data["unread_count"] == 2
    assert archived.data["item"]["archived"] is True and archived.data["unread_count"] == 1
    assert removed.event == "item.removed" and removed.data["id"] == a
    assert all_read.event == "inbox.read_all" and all_read.data["unread_count"] == 0
    assert all_read.data["up_to"] == all_read.id and all_read.data["read_at"]
    assert unread.data["item"]["id"] == c and unread.data["unread_count"] == 1
    ids = [e.id for e in (read, archived, removed, all_read, unread)]
    assert ids == sorted(ids, key=lambda p: tuple(map(int, p.split("-"))))


async def test_resumed_changes_carry_the_current_state(live: LiveClient) -> None:
    async with live.sse("hana") as stream:
        await stream.until("ready")
        nid = (await live.publish("hana", "x")).body["id"]
        assert (await stream.next()).event == "item.created"
        last_id = stream.last_id
    await live.post(f"/v1/users/hana/inbox/{nid}/read")
    await live.post(f"/v1/users/hana/inbox/{nid}/archive")
    async with live.sse("hana", last_id=last_id) as stream:
        first, second, ready = [await stream.next() for _ in range(3)]
    assert [first.event, second.event, ready.event] == ["item.changed", "item.changed", "ready"]
    assert second.data["item"]["archived"] is True and second.data["unread_count"] == 0


async def test_unknown_or_garbage_positions_get_a_reset(live: LiveClient) -> None:
    await live.publish("ivy", "one")
    await asyncio.sleep(0.3)
    async with live.sse("ivy", last_id="9999999999999-0") as stream:
        ahead = await stream.next()
    async with live.sse("ivy", last_id="not-a-position") as stream:
        garbage = await stream.next()
    assert ahead.event == garbage.event == "reset"
    assert ahead.data["unread_count"] == 1 and "unknown position" in ahead.data["reason"]
    bad = await live.get("/v1/users/ivy/events?since=nope")
    assert bad.status == 422 and bad.content_type == "application/problem+json"


async def test_a_client_too_far_behind_gets_a_reset(live_settings: Settings) -> None:
    settings = live_settings.replace(live_resume_max=5)
    async with running_live(settings) as live:
        async with live.sse("jack") as stream:
            await stream.next()
            last_id = stream.last_id
        for n in range(8):
            await live.publish("jack", f"n{n}")
        for _ in range(100):  # publishing does not wait for the projector (bounded wait)
            if (await live.get("/v1/users/jack/unread_count")).body["unread_count"] == 8:
                break
            await asyncio.sleep(0.05)
        async with live.sse("jack", last_id=last_id) as stream:
            first = await stream.next()
            assert (await stream.quiet(0.2)) == []
    assert first.event == "reset" and "too far behind" in first.data["reason"]
    assert first.data["unread_count"] == 8


async def test_heartbeats_keep_idle_streams_alive_and_move_the_position(
        live_settings: Settings) -> None:
    settings = live_settings.replace(live_heartbeat_s=0.2)
    async with running_live(settings) as live, live.sse("kate") as stream:
        live.serving.runner.app[HUB].reconcile_s = 0.5
        ready = await stream.next()
        keepalive = await stream.next(within=3, keepalive=True)
        assert keepalive.comment == "keep-alive"
        # another user of the same partition changes: no message for kate, but the
        # feed's periodic re-read moves past it and a heartbeat tells kate's stream
        # the new position (so a later resume starts there)
        other = next(u for u in (f"u{n}" for n in range(500))
                     if _same_partition(settings, u, "kate"))
        published = await live.publish(other, "not for kate")
        beat = await stream.until("heartbeat", within=5)
    assert ready.event == "ready" and beat.id == beat.data["position"]
    assert _key(beat.id) >= _key(published.body["position"])


def _key(position: str | None) -> tuple[int, int]:
    assert position is not None
    ms, _, seq = position.partition("-")
    return int(ms), int(seq)


def _same_partition(settings: Settings, a: str, b: str) -> bool:
    from herald.streams.partitions import partition_for

    return partition_for(a, settings.partitions) == partition_for(b, settings.partitions)


async def test_a_trimmed_log_after_the_position_gets_a_reset(live: LiveClient,
                                                            redis: Any) -> None:
    from herald.streams.keys import Keys
    from herald.streams.partitions import partition_for

    async with live.sse("lou") as stream:
        await stream.next()
        last_id = stream.last_id
    for n in range(3):
        await live.publish("lou", f"t{n}")
    await asyncio.sleep(0.3)
    partition = partition_for("lou", live.settings.partitions)
    await redis.xtrim(Keys(live.settings.prefix).stream(partition), maxlen=1, approximate=False)
    async with live.sse("lou", last_id=last_id) as stream:
        first = await stream.next()
    assert first.event == "reset" and "no longer holds" in first.data["reason"]
    assert first.data["unread_count"] == 3
