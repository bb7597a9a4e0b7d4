"""Typed application keys: what ``create_app`` puts in the app for handlers to use.

Resources that need the event loop (Redis client, producer, queries, limiter)
are set by the app's cleanup context at start-up and are absent before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from herald.streams.settings import Settings

if TYPE_CHECKING:
    from herald.api.auth import Authenticator
    from herald.api.lag import LagProbe
    from herald.api.metrics import Metrics
    from herald.api.request_limit import RequestLimiter
    from herald.consumers.projection.queries import InboxQueries
    from herald.streams.producer import Producer
    from herald.streams.schedule_cancel import Canceller

SETTINGS = web.AppKey("settings", Settings)
REDIS: web.AppKey[Any] = web.AppKey("redis")
PRODUCER: web.AppKey[Producer] = web.AppKey("producer")
CANCELLER: web.AppKey[Canceller] = web.AppKey("canceller")
QUERIES: web.AppKey[InboxQueries] = web.AppKey("queries")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
LIMITER: web.AppKey[RequestLimiter] = web.AppKey("limiter")
PROBE: web.AppKey[LagProbe] = web.AppKey("probe")
SCHEMAS: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("schemas")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
