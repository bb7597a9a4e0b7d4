"""Operations routes: liveness, readiness, Prometheus metrics and the OpenAPI document.

``/healthz`` answers while the process serves (no Redis call). ``/readyz`` is 200
only when Redis answers PING and every partition's projector lag is at most
``HERALD_READY_MAX_LAG``; else 503 problem+json naming the reason. ``/metrics``
refreshes the per-partition gauges from Redis before rendering (and the series of
other sources in the process: live push, the worker roles under ``herald run``);
when Redis is unreachable it still renders the process's own metrics.
"""

from __future__ import annotations

import redis
from aiohttp import web

from herald.api.context import METRICS, OPENAPI, PROBE, REDIS
from herald.api.errors import UNAVAILABLE, Unavailable
from herald.api.jsonio import json_response
from herald.api.metrics import CONTENT_TYPE
from herald.api.routing import Call, Reply, Route
from herald.streams.connection import eviction_warning
from herald.streams.errors import RedisUnavailableError
from herald.streams.log import get_logger
from herald.streams.settings import Settings

log = get_logger(__name__)
READY_RETRY_S = 5


async def healthz(call: Call) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(call: Call) -> web.Response:
    app = call.app
    bound = call.settings.ready_max_lag_s
    try:
        await app[REDIS].ping()
        reading = await app[PROBE].read()
    except UNAVAILABLE as exc:
        raise Unavailable(f"Redis is unreachable: {exc}", retry_after=READY_RETRY_S) from exc
    worst = reading.max_lag_s
    if worst > bound:
        behind = sorted(p for p, lag in reading.lag_s.items() if lag > bound)
        raise Unavailable(
            f"projector lag {worst:.1f}s is over the bound of {bound:g}s "
            f"(partitions {', '.join(map(str, behind[:10]))})",
            retry_after=READY_RETRY_S,
        )
    warning = await eviction_warning(app[REDIS])
    return json_response({"status": "ready", "max_lag_seconds": round(worst, 3),
                          "lag_bound_seconds": bound, "warnings": [warning] if warning else []})


async def metrics(call: Call) -> web.Response:
    app = call.app
    registry = app[METRICS]
    try:
        registry.update_partitions(await app[PROBE].read())
        for source in registry.sources:
            await source.sample(app[REDIS], call.settings)
    except (RedisUnavailableError, redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("metrics_partitions_unavailable", error=str(exc))
    registry.refresh()
    body = registry.render() + b"".join(source.render() for source in registry.sources)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(call: Call) -> web.Response:
    return json_response(call.app[OPENAPI])


def routes(settings: Settings) -> list[Route]:
    ops = "operations"
    return [
        Route("GET", "/healthz", healthz, "healthz", "Liveness", ops, "none",
              {200: Reply("The process serves requests.", "Health")}),
        Route("GET", "/readyz", readyz, "readyz", "Readiness", ops, "none",
              {200: Reply("Redis answers and projector lag is under the bound.", "Ready")},
              description="503 (problem+json) when Redis is unreachable or any partition's "
                          "projector lag is over HERALD_READY_MAX_LAG."),
        Route("GET", "/metrics", metrics, "metrics", "Prometheus metrics", ops, "none",
              {200: Reply("Prometheus text exposition.", None, "text/plain")}),
        Route("GET", "/openapi.json", openapi, "openapi", "This document", ops, "none",
              {200: Reply("The OpenAPI 3.1 document.", None)}),
    ]
