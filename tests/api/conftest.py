"""API test fixtures: the real app on a real socket (127.0.0.1, free port), real HTTP.

``api`` serves ``create_app`` on the session's Redis in the test's own key prefix
and gives a small client (:class:`ApiClient`) that speaks JSON and keeps status,
headers and body of each answer. ``projector`` runs the projector role of
``consumers.roles.ROLES`` as a background task for end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from herald.api.app import DEFAULT_MODULES, RouteModule, create_app
from herald.api.auth import mint_token
from herald.api.server import Serving, serve
from herald.streams.settings import Settings

SERVICE_KEY = "test-service-key-0123456789"
OTHER_KEY = "test-other-key-9876543210"
SECRET = "test-token-secret-" + "0123456789abcdef" * 4  # 82 bytes: fine for HS512 too


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any
    raw: bytes

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", "")).split(";")[0]


class ApiClient:
    """JSON over HTTP to one served app; ``auth`` is a key, a token, or None."""

    def __init__(self, session: aiohttp.ClientSession, serving: Serving, settings: Settings):
        self.session = session
        self.serving = serving
        self.url = serving.url
        self.settings = settings

    def token(self, user: str, ttl_s: float = 3600) -> str:
        return mint_token(SECRET, user, ttl_s)

    async def call(
        self, method: str, path: str, *, auth: str | None = SERVICE_KEY, json: Any = None,
        data: bytes | None = None, headers: dict[str, str] | None = None,
    ) -> Answer:
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = f"Bearer {auth}"
        body = data
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        payload: Any = io.BytesIO(body) if body and len(body) > 512 * 1024 else body
        async with self.session.request(method, self.url + path, data=payload, headers=hdrs) as r:
            raw = await r.read()
            parsed: Any = None
            if raw and r.content_type in ("application/json", "application/problem+json"):
                parsed = orjson.loads(raw)
            return Answer(r.status, r.headers, parsed, raw)

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Answer:
        return await self.call("POST", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.call("DELETE", path, **kw)

    async def publish(self, user: str, title: str = "hello", **fields: Any) -> Answer:
        answer = await self.post("/v1/notifications", json={"user": user, "title": title, **fields})
        assert answer.status in (200, 201), answer.body
        return answer


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.replace(api_keys=(SERVICE_KEY, OTHER_KEY), token_secret=SECRET,
                            action_wait_s=3.0, access_log=False)


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings, modules: Sequence[RouteModule] = DEFAULT_MODULES
) -> AsyncIterator[ApiClient]:
    serving = await serve(create_app(settings, modules=modules), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield ApiClient(session, serving, settings)
    finally:
        await serving.stop()


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[ApiClient]:
    async with running_api(api_settings) as client:
        yield client


@contextlib.asynccontextmanager
async def running_role(name: str, settings: Settings, redis: Any) -> AsyncIterator[None]:
    """Run one registered role in the background; stop it and surface its errors."""
    from herald.consumers.roles import ROLES

    role: Callable[..., Any] = getattr(ROLES[name], "run", ROLES[name])
    stop = asyncio.Event()
    task = asyncio.create_task(role(settings, redis, stop), name=name)
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            task.cancel()
            raise


@pytest.fixture
async def projector(api_settings: Settings, redis: Any) -> AsyncIterator[None]:
    async with running_role("projector", api_settings, redis):
        yield
