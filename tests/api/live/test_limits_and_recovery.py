"""Refusals (per user, per process), graceful shutdown, token expiry, a lost pub/sub
connection recovered by re-reading, and the browser credential rules."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest

from herald.api.live.hub import HUB
from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY
from tests.api.live.conftest import LiveClient, running_live, ws_next

pytestmark = pytest.mark.usefixtures("projector")


async def test_per_user_limit_refuses_with_429(live_settings: Settings) -> None:
    settings = live_settings.replace(live_max_per_user=2)
    async with running_live(settings) as live, live.sse("amy"), live.sse("amy"):
        refused = await live.get("/v1/users/amy/events", auth=live.token("amy"))
        other_user = await live.session.get(f"{live.url}/v1/users/ben/events",
                                            params={"access_token": live.token("ben")})
        other_status = other_user.status
        other_user.close()
    assert refused.status == 429 and refused.content_type == "application/problem+json"
    assert "2 live connections" in refused.body["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert other_status == 200


async def test_per_process_limit_refuses_with_503(live_settings: Settings) -> None:
    settings = live_settings.replace(live_max_connections=2)
    async with running_live(settings) as live, live.sse("amy"), live.ws("ben"):
        refused = await live.get("/v1/users/cleo/events", auth=live.token("cleo"))
        stats = live.serving.runner.app[HUB].stats()
    assert refused.status == 503 and "maximum of 2 live connections" in refused.body["detail"]
    assert stats["connections"] == 2 and stats["refused"] == 1


async def test_slots_are_freed_when_clients_leave(live_settings: Settings) -> None:
    settings = live_settings.replace(live_max_per_user=1)
    async with running_live(settings) as live:
        hub = live.serving.runner.app[HUB]
        for _ in range(3):  # a page reloaded three times
            async with live.sse("dan") as stream:
                await stream.next()
            for _ in range(60):  # the ticker notices the hang-up within a second
                if not hub.connections:
                    break
                await asyncio.sleep(0.05)
        assert hub.connections == 0 and hub.users == {}


async def test_shutdown_sends_close_then_ends_the_stream(live_settings: Settings) -> None:
    async with running_live(live_settings) as live, live.sse("eve") as stream:
        await stream.next()
        stopping = asyncio.create_task(live.serving.stop())
        close = await stream.next()
        with pytest.raises(EOFError):
            await stream.next(within=2)
        async with asyncio.timeout(5):
            await stopping
    assert close.event == "close" and close.data["reason"] == "shutdown" and close.id is None


async def test_expired_token_closes_the_stream(live: LiveClient) -> None:
    token = live.token("finn", ttl_s=1)
    async with live.sse("finn", token=token) as stream:
        await stream.next()
        close = await stream.next(within=4)
    assert close.event == "close" and close.data["reason"] == "token_expired"


async def test_lost_pubsub_connection_is_recovered(live: LiveClient, redis: Any) -> None:
    """A signal lost with the connection is made up for by re-reading the log."""
    hub = live.serving.runner.app[HUB]
    deliver = hub.subscriber._on_signal
    async with live.sse("gus") as stream:
        await stream.next()
        hub.subscriber._on_signal = lambda *signal: None  # the signal is lost in transit
        published = await live.publish("gus", "lost signal")
        assert await stream.quiet(0.5) == []
        hub.subscriber._on_signal = deliver
        killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert int(killed) >= 1
        event = await stream.next(within=5)
        assert event.id == published.body["position"]
        again = await live.publish("gus", "after the cut")  # and live again
        assert (await stream.next()).id == again.body["position"]


async def test_credentials_header_query_and_cookie(live: LiveClient) -> None:
    token = live.token("hal")
    async with live.sse("hal", auth_header=True) as stream:
        assert (await stream.next()).event == "ready"
    async with live.sse("me", token=token) as stream:  # `me` with a user token
        assert (await stream.next()).event == "ready"
    cookie = {"herald_token": token}
    async with aiohttp.ClientSession(cookies=cookie) as session:
        response = await session.get(f"{live.url}/v1/users/hal/events")
        assert response.status == 200
        response.close()
        same = await session.ws_connect(f"{live.url}/v1/users/hal/ws",
                                        headers={"Origin": live.url})
        assert (await ws_next(same))["type"] == "ready"
        await same.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await session.ws_connect(f"{live.url}/v1/users/hal/ws",
                                     headers={"Origin": "https://evil.example"})
    assert foreign.value.status == 403


async def test_bad_or_foreign_credentials_are_refused(live: LiveClient) -> None:
    nothing = await live.get("/v1/users/ida/events", auth=None)
    wrong = await live.get("/v1/users/ida/events?access_token=garbage", auth=None)
    foreign = await live.get("/v1/users/ida/events", auth=live.token("jon"))
    assert nothing.status == 401 and wrong.status == 401 and foreign.status == 403
    assert "WWW-Authenticate" in nothing.headers


async def test_service_key_may_stream_any_user(live: LiveClient) -> None:
    response = await live.streams.get(f"{live.url}/v1/users/kim/events",
                                      headers={"Authorization": f"Bearer {SERVICE_KEY}"})
    with contextlib.closing(response):
        assert response.status == 200
        line = await response.content.readline()
    assert line.startswith(b"retry:")
