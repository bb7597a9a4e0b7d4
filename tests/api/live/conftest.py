"""Live-push fixtures: the API with the live routes, SSE and WebSocket clients.

``live`` serves the app (default modules + api/routes_live.py) on a real socket;
the ``projector`` fixture (tests/api/conftest.py) runs the projector role in the
same loop, so a publish reaches the stream end to end: API → log → projector →
pub/sub signal → hub → client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from herald.api import routes_live
from herald.api.app import DEFAULT_MODULES, RouteModule
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_api

CHROMIUM = Path(os.environ.get("HERALD_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]
WAIT_MS = 10_000  # an upper bound: two test workers and a browser share two cores in CI
HAVE_CHROMIUM = CHROMIUM.exists()

LIVE_MODULES: tuple[RouteModule, ...] = tuple(dict.fromkeys((*DEFAULT_MODULES, routes_live)))


@dataclass
class Event:
    """One SSE event (``comment`` for keep-alive lines)."""

    id: str | None = None
    event: str | None = None
    data: Any = None
    comment: str | None = None
    raw: list[str] = field(default_factory=list)

    @property
    def type(self) -> str | None:
        return self.data.get("type") if isinstance(self.data, dict) else None


class EventStream:
    """A minimal text/event-stream reader over an aiohttp response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.last_id: str | None = None

    async def next(self, within: float = 3.0, *, keepalive: bool = False) -> Event:
        """The next event (keep-alive comments skipped unless ``keepalive``)."""
        async with asyncio.timeout(within):
            while True:
                event = await self._block()
                if event.comment is not None and event.data is None and event.id is None:
                    if keepalive:
                        return event
                    continue
                if event.data is None and event.id is None:
                    continue  # e.g. the leading "retry:" block
                if event.id is not None:
                    self.last_id = event.id
                return event

    async def _block(self) -> Event:
        event = Event()
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if not line:
                return event
            event.raw.append(line)
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                event.comment = value
            elif name == "id":
                event.id = value
            elif name == "event":
                event.event = value
            elif name == "data":
                event.data = orjson.loads(value)

    async def until(self, type_: str, within: float = 3.0) -> Event:
        async with asyncio.timeout(within):
            while True:
                event = await self.next(within)
                if event.type == type_:
                    return event

    async def quiet(self, seconds: float) -> list[Event]:
        """Events (not keep-alives) that arrive within ``seconds``."""
        out: list[Event] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    out.append(await self.next(seconds + 1))
        return out

    def close(self) -> None:
        self.response.close()


class LiveClient(ApiClient):
    """ApiClient plus SSE and WebSocket openers (on their own unlimited session, so open
    streams never starve the JSON calls of pooled connections)."""

    streams: aiohttp.ClientSession

    @contextlib.asynccontextmanager
    async def sse(self, user: str, *, token: str | None = None, since: str | None = None,
                  last_id: str | None = None, auth_header: bool = False
                  ) -> AsyncIterator[EventStream]:
        token = token or self.token(user)
        params = {} if auth_header else {"access_token": token}
        if since is not None:
            params["since"] = since
        headers = {"Authorization": f"Bearer {token}"} if auth_header else {}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        response = await self.streams.get(f"{self.url}/v1/users/{user}/events", params=params,
                                           headers=headers, timeout=aiohttp.ClientTimeout())
        try:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            yield EventStream(response)
        finally:
            response.close()

    @contextlib.asynccontextmanager
    async def ws(self, user: str, *, token: str | None = None, since: str | None = None
                 ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        params = {"access_token": token or self.token(user)}
        if since is not None:
            params["since"] = since
        async with self.streams.ws_connect(f"{self.url}/v1/users/{user}/ws",
                                           params=params, autoping=True) as socket:
            yield socket


async def ws_next(socket: aiohttp.ClientWebSocketResponse, within: float = 3.0,
                  *, skip_heartbeats: bool = True) -> dict[str, Any]:
    """The next JSON message of a WebSocket (heartbeats skipped by default)."""
    async with asyncio.timeout(within):
        while True:
            message = await socket.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                return {"type": f"ws:{message.type.name.lower()}", "code": socket.close_code,
                        "extra": message.extra}
            data = orjson.loads(message.data)
            if skip_heartbeats and data["type"] == "heartbeat":
                continue
            return data


@pytest.fixture
def live_settings(api_settings: Settings) -> Settings:
    return api_settings.replace(api_rate_user="100000/s", live_max_per_user=100,
                                live_heartbeat_s=15.0)


@contextlib.asynccontextmanager
async def running_live(settings: Settings) -> AsyncIterator[LiveClient]:
    async with running_api(settings, LIVE_MODULES) as client, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as streams:
        live = LiveClient(client.session, client.serving, settings)
        live.streams = streams
        yield live


@pytest.fixture
async def live(live_settings: Settings) -> AsyncIterator[LiveClient]:
    async with running_live(live_settings) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (skips without it, fails without it under CI=true)."""
    if not HAVE_CHROMIUM:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {CHROMIUM} is missing: run `make browser`")
        pytest.skip(f"{CHROMIUM} not found: run `make browser` (apt: chromium, fonts-noto-cjk)")
    ARTIFACTS.mkdir(exist_ok=True)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
