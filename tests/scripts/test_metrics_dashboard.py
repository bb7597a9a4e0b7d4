"""Metrics from every process, and the Grafana dashboard built on them.

A real ``herald run`` (API and every role in one process) while events flow —
notifications, webhook deliveries that fail once and are rate limited, a scheduled
reminder, a poison entry, a live SSE client: every metric a dashboard panel's PromQL
names exists in the scrape, and the named series move. ``herald worker`` serves the
same series on ``HERALD_METRICS_PORT``; ``herald api --workers 2`` answers /metrics
with the sum over both processes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from herald.api.server import Serving, serve
from herald.streams.keys import Keys
from herald.streams.server import free_port
from herald.streams.settings import Settings
from herald_client import mint_token
from tests.api.conftest import SECRET, SERVICE_KEY
from tests.client.conftest import herald_run, wait_answers
from tests.scripts.test_server_commands import base_env

DASHBOARD = Path(__file__).resolve().parents[2] / "scripts" / "grafana" / "herald.json"
HERALD = str(Path(sys.executable).with_name("herald"))
NAME = re.compile(r"\bherald_[a-z0-9_]+\b")
HEADERS = {"Authorization": f"Bearer {SERVICE_KEY}"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()

pytestmark = pytest.mark.slow


def dashboard_names() -> set[str]:
    """Every metric name in the PromQL of every panel."""
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    return {name for expr in exprs for name in NAME.findall(expr)}


def samples(text: str) -> dict[str, float]:
    """Sample name (labels summed) → value, from a Prometheus text exposition."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    return out


def labelled(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return out


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/metrics") as answer:
        assert answer.status == 200
        return await answer.text()


class Receiver:
    """A webhook endpoint: the first request fails (500), the rest succeed."""

    def __init__(self) -> None:
        self.calls = 0
        self.serving: Serving | None = None

    async def hook(self, request: web.Request) -> web.Response:
        self.calls += 1
        await request.read()
        return web.Response(status=500 if self.calls == 1 else 200)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.serving = await serve(app, "127.0.0.1", 0)
        return self.serving.url + "/hook"

    async def __aexit__(self, *exc: object) -> None:
        assert self.serving is not None
        await self.serving.stop()


async def _until(check: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.2)


async def _events_flow(url: str, prefix: str, redis_url: str, receiver: Receiver,
                       hook_url: str) -> tuple[str, str]:
    """Scrapes before and after: a live client, a scheduled reminder, a poison entry,
    five webhook deliveries (the first fails, all are rate limited)."""
    async with aiohttp.ClientSession(headers=HEADERS) as session, \
            aiohttp.ClientSession() as browser:
        before = await scrape(session, url)
        stream = await browser.get(f"{url}/v1/users/me/events",
                                   params={"access_token": mint_token(SECRET, "mia")})
        assert stream.status == 200
        async with session.put(f"{url}/v1/users/mia/profile", json={
                "webhook_url": hook_url, "webhook_secret": WEBHOOK_SECRET}) as answer:
            assert answer.status in (200, 202)
        for body in ({"user": "mia", "title": "soon", "delay_seconds": 1},
                     {"user": "mia", "title": "much later", "delay_seconds": 3600}):
            async with session.post(f"{url}/v1/notifications", json=body) as answer:
                assert answer.status == 201
        await asyncio.sleep(0.5)  # the profile is projected before the webhooks go
        for n in range(5):
            async with session.post(f"{url}/v1/notifications", json={
                    "user": "mia", "title": f"hook {n}",
                    "channels": ["in_app", "webhook"]}) as answer:
                assert answer.status == 201
        raw = aioredis.Redis.from_url(redis_url)
        await raw.xadd(Keys(prefix).stream(0), {b"e": b"\xc1 not msgpack"})
        await raw.aclose()

        async def delivered() -> bool:
            moved = samples(await scrape(session, url))
            return (moved.get("herald_schedule_fired_total", 0) >= 1
                    and moved.get("herald_dead_lettered_total", 0) >= 1
                    and receiver.calls >= 6)

        await _until(delivered)
        after = await scrape(session, url)
        stream.close()
    return before, after


async def test_every_panel_metric_is_scraped_and_moves(redis_url: str, tmp_path: Path) -> None:
    names = dashboard_names()
    receiver = Receiver()
    async with receiver as hook_url:
        with herald_run(redis_url, tmp_path, HERALD_RATE_LIMITS="webhook=2/s",
                        HERALD_RETRY_SCHEDULE="1s,1s,1s",
                        HERALD_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32") as running:
            before, after = await _events_flow(running.url, running.prefix, redis_url,
                                               receiver, hook_url)
    scraped = samples(after)
    missing = sorted(n for n in names if n not in scraped)
    assert missing == [], f"dashboard metrics absent from a real scrape: {missing}"
    old = samples(before)
    for name in ("herald_events_published_total", "herald_events_applied_total",
                 "herald_http_requests_total", "herald_publish_to_projected_seconds_count",
                 "herald_deliveries_total", "herald_delivery_retries_total",
                 "herald_rate_limit_waits_total", "herald_dead_lettered_total",
                 "herald_schedule_fired_total", "herald_live_messages_total"):
        assert scraped[name] > old.get(name, 0.0), name
    assert scraped["herald_schedule_depth"] >= 1
    assert scraped["herald_live_connections"] >= 1
    assert scraped["herald_dead_letters"] >= 1
    sent = labelled(after, "herald_deliveries_total")
    assert sent[(("channel", "webhook"), ("outcome", "sent"))] == 5
    groups = {dict(k)["group"] for k in labelled(after, "herald_consumer_lag")}
    assert {"projector", "webhook", "email"} <= groups
    count = scraped["herald_publish_to_projected_seconds_count"]
    assert scraped["herald_publish_to_projected_seconds_bucket"] >= count  # cumulative
    assert 0 < scraped["herald_publish_to_projected_seconds_sum"] / count < 5


async def test_a_worker_serves_its_metrics(settings: Settings, tmp_path: Path) -> None:
    env = base_env(REDIS_URL=settings.redis_url or "", HERALD_PREFIX=settings.prefix,
                   HERALD_PARTITIONS="8", HERALD_METRICS_PORT="0", HERALD_LOG_FORMAT="json",
                   HERALD_DATA_DIR=str(tmp_path))
    proc = await asyncio.create_subprocess_exec(
        HERALD, "worker", "--roles", "projector,scheduler", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        url = await _metrics_url(proc)
        async with aiohttp.ClientSession() as session:
            first = samples(await scrape(session, url))
            assert "process_cpu_seconds_total" in first
            raw = aioredis.Redis.from_url(settings.redis_url or "")
            await raw.xadd(Keys(settings.prefix).stream(1), {b"e": b"\xc1"})
            await raw.aclose()

            async def counted() -> bool:
                now = samples(await scrape(session, url))
                return now.get("herald_dead_lettered_total", 0) >= 1

            await _until(counted)
            text = await scrape(session, url)
        lag = labelled(text, "herald_consumer_pending")
        assert {dict(k)["group"] for k in lag} == {"projector"}
        assert len(labelled(text, "herald_schedule_depth")) == 8
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0


async def _metrics_url(proc: Any) -> str:
    assert proc.stderr is not None
    async with asyncio.timeout(20):
        async for raw in proc.stderr:
            if raw.startswith(b"{"):
                line = orjson.loads(raw)
                if line.get("event") == "metrics_started":
                    return str(line["url"]).removesuffix("/metrics")
    raise AssertionError("no metrics_started line")


async def test_several_api_processes_answer_the_sum(settings: Settings, tmp_path: Path
                                                    ) -> None:
    port = free_port()
    env = base_env(REDIS_URL=settings.redis_url or "", HERALD_PREFIX=settings.prefix,
                   HERALD_PARTITIONS="8", HERALD_API_KEYS=SERVICE_KEY,
                   HERALD_DATA_DIR=str(tmp_path), HERALD_LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        HERALD, "api", "--port", str(port), "--workers", "2", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_answers, url)
        requests = 40
        for _ in range(requests):  # new connections: the kernel spreads them
            async with aiohttp.ClientSession() as session, \
                    session.get(f"{url}/healthz") as answer:
                assert answer.status == 200
        for _ in range(6):  # whichever process answers, it shows both processes' counts
            async with aiohttp.ClientSession() as session:
                text = await scrape(session, url)
            healthz = labelled(text, "herald_http_requests_total")
            key = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
            assert healthz[key] >= requests
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_the_metrics_port_in_use_is_one_line(settings: Settings, tmp_path: Path
                                                   ) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(REDIS_URL=settings.redis_url or "", HERALD_PREFIX=settings.prefix,
                       HERALD_PARTITIONS="8", HERALD_METRICS_PORT=str(port),
                       HERALD_DATA_DIR=str(tmp_path))
        proc = await asyncio.create_subprocess_exec(
            HERALD, "worker", "--roles", "projector", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    line = err.decode().strip().splitlines()[-1]
    assert line.startswith(f"herald: error: cannot listen on 127.0.0.1:{port}")
    assert "HERALD_METRICS_PORT" in line and "Traceback" not in err.decode()

