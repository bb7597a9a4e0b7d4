"""No secret in clear at rest: a webhook secret that enters through the API is used
(the receiver verifies its signature) yet its bytes are found nowhere Herald keeps
data — the server's append-only file and RDB dump, snapshots, archive segments, the
retry queue, log output at debug level, metrics, status records and problem bodies.

The test runs its own private server (so its AOF and RDB hold only this test's
data), the API, the projector and the webhook worker; the receiver is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from herald.consumers.retention.role import Retention
from herald.streams.connection import connect
from herald.streams.server import ServerHandle, start_server
from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY, running_api, running_role
from tests.consumers.channels.conftest import Reply, WebhookReceiver, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = start_server(tmp_path / "server", die_with_parent=True)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    hook.key = os.urandom(32)
    hook.secret = "whsec_" + base64.b64encode(hook.key).decode()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    async for _ in serve(app, hook):
        yield hook


def files_under(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


async def wait_for(check: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("seal", [True, False], ids=["sealed", "content_in_clear"])
async def test_a_webhook_secret_is_nowhere_in_clear(
        private_server: ServerHandle, receiver: WebhookReceiver, tmp_path: Path,
        capfd: pytest.CaptureFixture[str], seal: bool) -> None:
    """With HERALD_SEAL=false content stays in clear, but credentials are sealed still."""
    settings = Settings.from_env(
        {}, redis_url=private_server.url, data_dir=tmp_path / "data", partitions=4,
        prefix="rest", api_keys=(SERVICE_KEY,), token_secret="s" * 40, access_log=True,
        webhook_allow_cidrs="127.0.0.1/32", retry_schedule="200ms",
        webhook_timeout_s=3.0, action_wait_s=3.0, seal=seal)
    secret = receiver.secret
    wrong = "whsec_" + secrets.token_urlsafe(300)  # too long: refused, never echoed
    redis = connect(settings)
    try:
        async with running_role("projector", settings, redis), \
                running_role("webhook", settings, redis), running_api(settings) as api:
            refused = await api.call("PUT", "/v1/users/ana/profile", json={
                "webhook_url": receiver.url + "/hook", "webhook_secret": wrong})
            assert refused.status == 422 and wrong not in refused.raw.decode()
            put = await api.call("PUT", "/v1/users/ana/profile", json={
                "webhook_url": receiver.url + "/hook", "webhook_secret": secret})
            assert put.status == 200, put.body
            assert secret not in put.raw.decode() and put.body["webhook_secret_set"] is True
            receiver.script(Reply(503))  # the first attempt waits in the retry queue
            published = await api.publish("ana", "hello", channels=["webhook"])
            nid = published.body["id"]

            async def delivered() -> bool:  # the 503, then the retry from the queue
                return len(receiver.received) >= 2

            await wait_for(delivered)
            assert len(receiver.received) == 2 and receiver.received[-1].verified
            status = await api.get(f"/v1/notifications/{nid}")
            metrics = await api.get("/metrics", auth=None)
            profile = await api.get("/v1/users/ana/profile")
            answers = [refused.raw, put.raw, status.raw, metrics.raw, profile.raw]
        retention = Retention(settings, redis, consumer="test", partitions=range(4))
        for p in range(settings.partitions):
            await retention.step(p, force=True, trim=True)
        assert await redis.bgsave()
        await wait_for(lambda: _saved(redis))
    finally:
        await redis.aclose()
    private_server.stop()  # flushes the append-only file

    places = files_under(private_server.data_dir or tmp_path / "server", settings.data_dir)
    names = {p.suffix for p in places} | {p.name for p in places}
    assert ".rdb" in names or "dump.rdb" in names, sorted(names)
    assert any(".aof" in n for n in names), sorted(names)
    assert any(p.suffix == ".seg" for p in places), "no archive segment was written"
    assert any("snapshot" in str(p) for p in places), "no snapshot was written"
    logs = capfd.readouterr()
    needles = {secret.encode(), receiver.key, base64.b64encode(receiver.key),
               wrong.encode()}
    for place in places:
        data = place.read_bytes()
        assert not any(n in data for n in needles), f"a secret in clear in {place}"
    assert "request_handled" in logs.out + logs.err  # the log output was captured
    for text in (logs.out, logs.err):
        assert not any(n in text.encode() for n in needles), "a secret in the log output"
    for raw in answers:
        assert not any(n in raw for n in needles), raw[:200]


async def _saved(redis: Any) -> bool:
    info = await redis.info("persistence")
    return not info.get("rdb_bgsave_in_progress") and info.get("rdb_last_bgsave_status") == "ok"
