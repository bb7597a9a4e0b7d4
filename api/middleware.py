"""The outermost middleware: request id, overload guard, access log and request metrics.

Every request gets an id (the caller's ``X-Request-Id`` when it is a short token,
else a new one), echoed in the ``X-Request-Id`` response header, bound into the
structlog context for every line logged while it runs, and named in its access
log line (``request_handled``: method, path, route, status, duration_ms, user).

Overload: beyond ``HERALD_API_MAX_INFLIGHT`` concurrent requests the API answers
503 with ``Retry-After`` at once instead of queueing (shed load early, stay
responsive). The guard counts requests of this process only; ``/healthz`` and
``/metrics`` are exempt, so an overloaded process is not mistaken for a dead one.
"""

from __future__ import annotations

import os
import re
import time

import structlog
from aiohttp import web

from herald.api.context import METRICS, SETTINGS
from herald.api.errors import REQUEST_ID, Handler, Unavailable, problem_response
from herald.api.routing import PRINCIPAL
from herald.streams.log import get_logger

log = get_logger("api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
UNMATCHED = "unmatched"
OVERLOAD_EXEMPT = frozenset({"/healthz", "/metrics"})  # liveness must not fail under load
IN_FLIGHT = web.AppKey("in_flight", list)  # [count]; a list so the app can mutate it


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.match(given) else os.urandom(16).hex()


def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None or request.match_info.http_exception is not None:
        return UNMATCHED
    return resource.canonical


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Id, overload guard, timing, metrics and the access log around every request."""
    app = request.app
    started = time.perf_counter()
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    counter = app[IN_FLIGHT]
    metrics = app[METRICS]
    settings = app[SETTINGS]
    status = 499  # the client went away before an answer (nginx's convention)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    counter[0] += 1
    metrics.in_flight.inc()
    try:
        if counter[0] > settings.api_max_inflight and request.path not in OVERLOAD_EXEMPT:
            response: web.StreamResponse = problem_response(request, Unavailable(
                "the API is overloaded; try again shortly", retry_after=1))
        else:
            response = await handler(request)
        status = response.status
        if not response.prepared:  # a streamed response set its own headers already
            response.headers["X-Request-Id"] = request_id
        return response
    finally:
        counter[0] -= 1
        metrics.in_flight.dec()
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        metrics.observe_request(request.method, route, status, elapsed)
        if settings.access_log:
            fields: dict[str, object] = {}
            principal = request.get(PRINCIPAL)
            if principal is not None:
                fields["user" if not principal.is_service else "key"] = principal.subject
            log.info(
                "request_handled", method=request.method, path=request.path, route=route,
                status=status, duration_ms=round(elapsed * 1000, 3), remote=request.remote,
                **fields,
            )
        structlog.contextvars.unbind_contextvars("request_id")
