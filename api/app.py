"""``create_app(settings)``: the aiohttp application of Herald's HTTP API.

Routes come from route modules (each has ``routes(settings) -> list[Route]``, and
optionally ``setup(app)``); ``DEFAULT_MODULES`` lists every one of this release, and
a test or an embedding application may pass its own as ``modules``. The OpenAPI
document is built from the same routes.

Middlewares, outermost first: observe (request id, overload guard, access log,
metrics) → problem+json → CORS (api/cors.py, when ``HERALD_CORS_ORIGINS`` is set).
Resources that need the loop (the Redis pool unless one
is given, producer, canceller, queries, request limiter, lag probe) are created in a cleanup
context at start-up and closed at shutdown. Nothing runs at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from herald.api import (
    cors,
    hardening,
    routes_admin,
    routes_client,
    routes_delivery,
    routes_devices,
    routes_events,
    routes_inbox,
    routes_inbox_states,
    routes_live,
    routes_ops,
    routes_pages,
    routes_publish,
    routes_schedule,
    routes_templates,
    routes_topics,
    routes_users,
    routes_workflows,
)
from herald.api.auth import Authenticator
from herald.api.context import (
    AUTH,
    CANCELLER,
    LIMITER,
    METRICS,
    OPENAPI,
    PROBE,
    PRODUCER,
    QUERIES,
    REDIS,
    SCHEMAS,
    SETTINGS,
)
from herald.api.errors import problem_middleware
from herald.api.lag import LagProbe
from herald.api.metrics import Metrics
from herald.api.middleware import IN_FLIGHT, observe_middleware
from herald.api.openapi import build_document
from herald.api.request_limit import RequestLimiter
from herald.api.routing import ROUTES, Route, add_routes
from herald.api.schemas import component_schemas
from herald.consumers.projection.queries import InboxQueries
from herald.streams.connection import connect, eviction_warning
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.producer import Producer
from herald.streams.schedule_cancel import Canceller
from herald.streams.settings import Settings

log = get_logger(__name__)


class RouteModule(Protocol):
    """``routes(settings)``; optionally ``setup(app)``, called after the app's resources
    are registered (a module adds its middleware, cleanup context or hooks there)."""

    def routes(self, settings: Settings) -> list[Route]: ...


DEFAULT_MODULES: tuple[RouteModule, ...] = (
    routes_ops, routes_publish, routes_events, routes_schedule, routes_inbox_states,
    routes_inbox, routes_delivery, routes_devices, routes_templates, routes_live,
    routes_admin, routes_pages, routes_users, routes_client, routes_topics,
    routes_workflows,
)


def create_app(
    settings: Settings,
    *,
    redis: Any = None,
    modules: Sequence[RouteModule] = DEFAULT_MODULES,
) -> web.Application:
    """The API application. ``redis``: a shared client (not closed by the app)."""
    app = web.Application(
        client_max_size=max(settings.max_body_bytes, settings.max_batch_body_bytes),
        middlewares=[observe_middleware, problem_middleware],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[AUTH] = Authenticator(settings)
    app[IN_FLIGHT] = [0]
    routes = [route for module in modules for route in module.routes(settings)]
    schemas = component_schemas(settings)
    for module in modules:  # a module may name its own schemas: ``schemas(settings)``
        schemas.update(getattr(module, "schemas", lambda _settings: {})(settings))
    add_routes(app, routes, schemas)
    app[ROUTES] = routes
    app[SCHEMAS] = schemas
    app[OPENAPI] = build_document(routes, schemas, settings)
    app.cleanup_ctx.append(_resources(redis))
    cors.setup(app, settings)
    hardening.setup(app)
    for module in modules:
        getattr(module, "setup", lambda app: None)(app)
    return app


def _resources(shared: Any) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.api_keys and not settings.service_keys:
            log.warning("api_keys_missing", detail="HERALD_API_KEYS and HERALD_SERVICE_KEYS "
                        "are empty: no service can publish; set one (or use `herald run`, "
                        "which makes dev keys)")
        client = shared if shared is not None else connect(settings)
        try:
            producer = Producer(client, settings)
            await producer.start()
            warning = await eviction_warning(client)
            if warning:
                log.warning("server_evicts", detail=warning)
            queries = InboxQueries(client, settings)
            app[REDIS] = client
            app[PRODUCER] = producer
            app[CANCELLER] = Canceller(client, settings)
            app[QUERIES] = queries
            app[LIMITER] = RequestLimiter(client, settings)
            app[PROBE] = LagProbe(client, queries, Keys(settings.prefix), settings.partitions)
            yield
        finally:
            if shared is None:
                await client.aclose()

    return context
