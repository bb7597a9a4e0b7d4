"""WebSocket end to end: latency, resume with since (also across a restart), fan-out
to 100 sockets of one user, the close handshake on shutdown, and non-upgrades."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from herald.streams.settings import Settings
from tests.api.live.conftest import LiveClient, running_live, ws_next

pytestmark = pytest.mark.usefixtures("projector")


async def test_a_publish_arrives_within_a_second(live: LiveClient) -> None:
    async with live.ws("wally") as socket:
        ready = await ws_next(socket)
        started = time.monotonic()
        published = await live.publish("wally", "Ünïcode ✓ 通知")
        message = await ws_next(socket, within=1.0)
        elapsed = time.monotonic() - started
    assert ready["type"] == "ready" and ready["resumed"] is False
    assert elapsed < 1.0
    assert message["type"] == "item.created"
    assert message["position"] == published.body["position"]
    assert message["item"]["title"] == "Ünïcode ✓ 通知" and message["unread_count"] == 1


async def test_reconnect_with_since_gets_exactly_the_missed_ones(live_settings: Settings) -> None:
    async with running_live(live_settings) as live, live.ws("xena") as socket:
        await ws_next(socket)
        await live.publish("xena", "seen")
        last = (await ws_next(socket))["position"]
    async with running_live(live_settings) as live:  # a restarted API process
        missed = [await live.publish("xena", f"m{n}") for n in range(3)]
    async with running_live(live_settings) as live, live.ws("xena", since=last) as socket:
        got = [await ws_next(socket) for _ in range(3)]
        ready = await ws_next(socket)
        with contextlib.suppress(TimeoutError):
            extra = await ws_next(socket, within=0.3)
            pytest.fail(f"unexpected message {extra}")
    assert [g["item"]["title"] for g in got] == ["m0", "m1", "m2"]
    assert [g["position"] for g in got] == [p.body["position"] for p in missed]
    assert ready["type"] == "ready" and ready["replayed"] == 3


async def test_hundred_sockets_of_one_user_all_receive(live: LiveClient) -> None:
    token = live.token("yuki")
    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(*(stack.enter_async_context(
            live.ws("yuki", token=token)) for _ in range(100)))
        assert all(m["type"] == "ready" for m in
                   await asyncio.gather(*(ws_next(s) for s in sockets)))
        published = await live.publish("yuki", "all of you")
        got = await asyncio.gather(*(ws_next(s, within=2.0) for s in sockets))
    assert {g["position"] for g in got} == {published.body["position"]}
    assert len(got) == 100


async def test_shutdown_closes_with_going_away(live_settings: Settings) -> None:
    async with running_live(live_settings) as live, live.ws("zoe") as socket:
        await ws_next(socket)
        stopping = asyncio.create_task(live.serving.stop())
        closing = await ws_next(socket)
        closed = await ws_next(socket)
        await stopping
    assert closing == {"type": "close", "reason": "shutdown", "detail": closing["detail"]}
    assert closed["type"] == "ws:close" and closed["code"] == aiohttp.WSCloseCode.GOING_AWAY


async def test_plain_get_is_told_to_upgrade(live: LiveClient) -> None:
    answer = await live.get("/v1/users/zoe/ws")
    assert answer.status == 426 and answer.content_type == "application/problem+json"
    assert answer.headers["Upgrade"] == "websocket"
