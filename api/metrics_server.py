"""``/metrics`` of a worker process (``herald worker`` with ``HERALD_METRICS_PORT``).

A tiny aiohttp app on ``HERALD_METRICS_HOST`` (127.0.0.1 by default): each scrape
reads the Redis-side gauges first (consumers/metrics.py ``sample``: lag, pending,
schedule depth), then renders the roles' series and this process's CPU, memory and
garbage-collector figures. Port 0 takes a free port (its URL is logged as
``metrics_started``). A port that cannot be bound is a ListenError naming
HERALD_METRICS_PORT. Redis unreachable at a scrape: the counters are still served.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from herald.api.metrics import CONTENT_TYPE
from herald.api.server import Serving, serve
from herald.consumers.metrics import ConsumerMetrics
from herald.streams.connection import REDIS_ERRORS
from herald.streams.log import get_logger
from herald.streams.settings import Settings

log = get_logger(__name__)


async def serve_metrics(settings: Settings, redis: Any, metrics: ConsumerMetrics) -> Serving:
    """Serve ``GET /metrics`` until the returned Serving is stopped."""
    process = CollectorRegistry()
    ProcessCollector(registry=process)
    PlatformCollector(registry=process)
    GCCollector(registry=process)

    async def scrape(request: web.Request) -> web.Response:
        try:
            await metrics.sample(redis, settings)
        except REDIS_ERRORS as exc:
            log.warning("metrics_sample_failed", error=str(exc))
        body = metrics.render() + generate_latest(process)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    port = settings.metrics_port or 0
    return await serve(app, settings.metrics_host, port, port_hint="HERALD_METRICS_PORT")
