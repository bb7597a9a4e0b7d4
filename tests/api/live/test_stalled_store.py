"""A store that stops answering (a stalled network): every path answers or fails within
HERALD_REQUEST_TIMEOUT — opening a stream included — and nothing hangs."""

from __future__ import annotations

import time
from urllib.parse import urlparse

from herald.streams.settings import Settings
from tests.api.live.conftest import running_live
from tests.chaos.proxy import Proxy


async def test_opening_a_stream_on_a_stalled_store_fails_within_the_request_timeout(
        live_settings: Settings) -> None:
    port = urlparse(live_settings.redis_url).port
    assert port is not None
    proxy = Proxy(port)
    await proxy.start()
    settings = live_settings.replace(redis_url=f"redis://127.0.0.1:{proxy.port}/0",
                                     request_timeout_s=1.5, redis_timeout_s=1.0)
    try:
        async with running_live(settings) as live:
            assert (await live.get("/v1/users/ann/inbox")).status == 200
            proxy.set("stall")
            for path in ("/v1/users/ann/events", "/v1/users/ann/inbox", "/readyz"):
                started = time.monotonic()
                answer = await live.get(path)
                took = time.monotonic() - started
                assert answer.status == 503 and took < 1.5 + 1.0, (path, answer.status, took)
                assert answer.headers["Retry-After"]
            started = time.monotonic()
            assert (await live.get("/healthz", auth=None)).status == 200
            assert time.monotonic() - started < 0.5  # liveness needs no store
            proxy.set("pass")
            proxy.reset()
    finally:
        await proxy.stop()
