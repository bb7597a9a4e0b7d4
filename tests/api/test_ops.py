"""Operations: liveness, readiness against projector lag, Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from herald.api.lag import CACHE_S
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_api, running_role


async def test_healthz_needs_no_auth(api: ApiClient) -> None:
    answer = await api.get("/healthz", auth=None)
    assert (answer.status, answer.body) == (200, {"status": "ok"})


async def test_readyz_follows_projector_lag(api_settings: Settings, redis: Any) -> None:
    settings = api_settings.replace(ready_max_lag_s=0.3)
    async with running_api(settings) as api:
        ready = await api.get("/readyz", auth=None)
        assert ready.status == 200 and ready.body["status"] == "ready"
        await api.publish("alice", "nobody projects this yet")
        await asyncio.sleep(0.3 + CACHE_S + 0.1)  # older than the bound, past the probe cache
        behind = await api.get("/readyz", auth=None)
        assert behind.status == 503 and behind.content_type == "application/problem+json"
        assert "projector lag" in behind.body["detail"] and "Retry-After" in behind.headers
        async with running_role("projector", settings, redis):
            deadline = time.monotonic() + 10
            while (await api.get("/readyz", auth=None)).status != 200:
                assert time.monotonic() < deadline, "never became ready"
                await asyncio.sleep(0.1)


async def test_metrics_cover_requests_lag_and_dead_letters(api: ApiClient, redis: Any) -> None:
    await api.get("/v1/users/alice/inbox")
    await api.get("/v1/users/bob/inbox")
    await api.get("/v1/users/bob/inbox?limit=0")
    await api.get("/nowhere")
    keys = Keys(api.settings.prefix)
    await redis.xadd(keys.dead_letters(3), {b"reason": b"test"})
    await redis.xadd(keys.stream(5), {b"e": b"unprojected"})
    answer = await api.get("/metrics", auth=None)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    text = answer.raw.decode()
    inbox = 'method="GET",route="/v1/users/{user}/inbox"'
    assert f'herald_http_requests_total{{{inbox},status="200"}} 2.0' in text
    assert f'herald_http_requests_total{{{inbox},status="422"}} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert f'herald_http_request_duration_seconds_bucket{{le="0.01",{inbox}}}' in text
    assert 'herald_dead_letters{partition="3"} 1.0' in text
    assert 'herald_dead_letters{partition="0"} 0.0' in text
    lag = [line for line in text.splitlines()
           if line.startswith('herald_projector_lag_seconds{partition="5"}')]
    assert len(lag) == 1 and 0 <= float(lag[0].split()[-1]) < 60
    assert "process_cpu_seconds_total" in text
