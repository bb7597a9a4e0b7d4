"""wait_newer: wakes on a publish, times out empty, answers at once when already newer,
and works without the hub (polling fallback)."""

from __future__ import annotations

import asyncio
import time

import pytest

from herald.api import routes_inbox, routes_ops, routes_publish
from herald.api.app import create_app
from herald.api.longpoll import wait_newer
from herald.api.server import serve
from herald.streams.settings import Settings
from tests.api.live.conftest import LiveClient

pytestmark = pytest.mark.usefixtures("projector")


def app_of(live: LiveClient):  # type: ignore[no-untyped-def]
    return live.serving.runner.app


async def _position(live: LiveClient, user: str, title: str) -> str:
    published = await live.publish(user, title)
    position: str = published.body["position"]
    await asyncio.sleep(0.3)  # projected
    return position


async def test_wakes_as_soon_as_a_newer_item_exists(live: LiveClient) -> None:
    after = await _position(live, "lena", "old")
    waiting = asyncio.create_task(wait_newer(app_of(live), "lena", after, 5.0))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    started = time.monotonic()
    await live.publish("lena", "new")
    assert await asyncio.wait_for(waiting, 2.0) is True
    assert time.monotonic() - started < 1.0


async def test_times_out_false_and_ignores_changes_that_add_nothing(live: LiveClient) -> None:
    published = await live.publish("mia", "only")
    await asyncio.sleep(0.3)
    after = published.body["position"]
    waiting = asyncio.create_task(wait_newer(app_of(live), "mia", after, 0.8))
    await asyncio.sleep(0.1)
    await live.post(f"/v1/users/mia/inbox/{published.body['id']}/read")  # a signal, no item
    started = time.monotonic()
    assert await waiting is False
    assert 0.3 < time.monotonic() - started < 1.5


async def test_already_newer_answers_at_once(live: LiveClient) -> None:
    await _position(live, "ned", "a")
    started = time.monotonic()
    assert await wait_newer(app_of(live), "ned", "0-1", 5.0) is True
    assert time.monotonic() - started < 0.5
    other = app_of(live)
    assert await wait_newer(other, "nobody-here", "0-1", 0.1) is False


async def test_without_the_hub_it_polls(api_settings: Settings, live: LiveClient) -> None:
    app = create_app(api_settings, modules=(routes_ops, routes_publish, routes_inbox))
    serving = await serve(app, "127.0.0.1", 0)
    try:
        after = await _position(live, "ola", "a")
        waiting = asyncio.create_task(wait_newer(serving.runner.app, "ola", after, 3.0))
        await asyncio.sleep(0.1)
        await live.publish("ola", "b")
        assert await asyncio.wait_for(waiting, 2.0) is True
    finally:
        await serving.stop()


async def test_inbox_route_long_polls(live: LiveClient) -> None:
    after = await _position(live, "pia", "first")
    started = time.monotonic()
    waiting = asyncio.create_task(live.get(f"/v1/users/pia/inbox?after={after}&wait=5"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await live.publish("pia", "second")
    answer = await asyncio.wait_for(waiting, 3)
    assert answer.status == 200 and time.monotonic() - started < 2.0
    assert [i["title"] for i in answer.body["items"]] == ["second"]
    started = time.monotonic()
    empty = await live.get(f"/v1/users/pia/inbox?after={answer.body['items'][0]['position']}"
                           "&wait=0.5")
    assert empty.status == 200 and empty.body["items"] == []
    assert 0.4 < time.monotonic() - started < 2.0
    # Without `after`: newer than the newest when the request arrived, then the page.
    waiting = asyncio.create_task(live.get("/v1/users/pia/inbox?wait=5"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await live.publish("pia", "third")
    answer = await asyncio.wait_for(waiting, 3)
    assert answer.status == 200
    assert [i["title"] for i in answer.body["items"]] == ["third", "second", "first"]
    too_long = await live.get(f"/v1/users/pia/inbox?after={after}&wait=3600")
    assert too_long.status == 422
