"""``herald_client.AsyncHerald`` against a real ``herald run``: the same operations as
coroutines, errors with the problem, a retried publish appended once, timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest

from herald.streams.server import free_port
from herald_client import (
    AsyncHerald,
    NotFound,
    RequestTimeout,
    TransportError,
    Unprocessable,
    mint_token,
)
from tests.client.conftest import Proxy, Running

pytestmark = pytest.mark.slow


async def test_operations(herald_server: Running) -> None:
    async with AsyncHerald(herald_server.url, api_key=herald_server.api_key) as herald:
        sent = await herald.publish("gus", "async hello", category="team",
                                    idempotency_key="gus-1")
        assert (await herald.publish("gus", "async hello", category="team",
                                     idempotency_key="gus-1"))[
            "duplicate"] is True
        page = await herald.inbox("gus", after="0-1", wait=5)
        assert [i["id"] for i in page["items"]] == [sent["id"]]
        assert await herald.unread_count("gus") == 1
        assert (await herald.mark_read("gus", sent["id"]))["read_at"]
        assert [i["id"] async for i in herald.iter_inbox("gus", page_size=1)] == [sent["id"]]
        batch = await herald.publish_batch([{"user": "gus", "title": "b1"},
                                            {"user": "gus", "title": "b2"}])
        assert batch["created"] == 2
        scheduled = await herald.schedule("gus", "later", delay=600, cancel_key="gus-later")
        assert scheduled["kind"] == "scheduled"
        assert (await herald.cancel("gus-later", user="gus"))["cancel_key"] == "gus-later"
        with pytest.raises(Unprocessable) as bad:
            await herald.publish("gus", "x", channels=["fax"])
        assert bad.value.errors and bad.value.errors[0]["path"].startswith("channels")
        with pytest.raises(NotFound):
            await herald.mark_read("gus", "0" * 26)
    user = AsyncHerald(herald_server.url, token=mint_token(herald_server.token_secret, "gus"))
    try:
        assert await user.unread_count("me") == 2
    finally:
        await user.aclose()


async def test_a_retried_publish_is_appended_once(herald_server: Running) -> None:
    with Proxy(herald_server.url, hang_after_forward=1, hang_s=3.0) as proxy:
        async with AsyncHerald(proxy.url, api_key=herald_server.api_key, timeout=1.0,
                               retries=2) as herald:
            sent = await herald.publish("hal", "exactly once")
        assert proxy.seen["/v1/notifications"] == 2 and sent["duplicate"] is True
    async with AsyncHerald(herald_server.url, api_key=herald_server.api_key) as direct:
        page = await direct.inbox("hal", after="0-1", wait=5)
        await asyncio.sleep(0.3)
        page = await direct.inbox("hal")
    assert [i["title"] for i in page["items"]] == ["exactly once"]


async def test_timeouts_and_no_server(herald_server: Running) -> None:
    with Proxy(herald_server.url, hang_after_forward=10, hang_s=2.0) as proxy:
        async with AsyncHerald(proxy.url, api_key=herald_server.api_key, timeout=0.5,
                               retries=1) as herald:
            started = time.monotonic()
            with pytest.raises(RequestTimeout):
                await herald.health()
            assert time.monotonic() - started < 5
    async with AsyncHerald(f"http://127.0.0.1:{free_port()}", retries=1) as nowhere:
        with pytest.raises(TransportError):
            await nowhere.health()
