"""Cross-origin requests (CORS): pages on other origins calling the API and live routes.

Driven by ``HERALD_CORS_ORIGINS`` (exact origins ``scheme://host[:port]``, or ``*``),
``HERALD_CORS_CREDENTIALS`` and ``HERALD_CORS_MAX_AGE``; nothing is installed when the
list is empty (browsers then refuse every cross-origin read, as before).

- **Answers** (every route, problem+json errors and streamed SSE included): an allowed
  ``Origin`` gets ``Access-Control-Allow-Origin`` (that origin; ``*`` in wildcard mode),
  ``Access-Control-Expose-Headers`` and, with credentials, ``…-Allow-Credentials``.
  They are added in ``on_response_prepare``, the moment before the headers leave, so
  a stream prepared inside its handler has them too. Every answer carries
  ``Vary: Origin`` so a cache never hands one origin's answer to another.
- **Preflight** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``):
  204 with the allowed methods, headers and max age for an allowed origin; 403
  problem+json without CORS headers otherwise (the browser refuses the request).
- **WebSocket** handshakes are not subject to CORS in browsers, so the server decides:
  an ``Origin`` that is neither this host nor allowed is refused with 403.

Why ``*`` is refused with credentials (streams/settings.py): browsers reject it, and
echoing any origin instead would let every site act with a user's cookie.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web

from herald.api.errors import Forbidden, Handler
from herald.streams.settings import Settings

METHODS = "GET, HEAD, POST, PUT, DELETE"
HEADERS = "Authorization, Content-Type, Last-Event-ID, X-Request-Id, If-None-Match, Cache-Control"
EXPOSED = "X-Request-Id, Retry-After, ETag, WWW-Authenticate, Location"


class Policy:
    """Which origins may read answers, and the headers that say so."""

    def __init__(self, settings: Settings) -> None:
        self.any = "*" in settings.cors_origins
        self.origins = frozenset(o.lower() for o in settings.cors_origins if o != "*")
        self.credentials = settings.cors_credentials
        self.max_age = str(int(settings.cors_max_age_s))

    def allows(self, origin: str) -> bool:
        return self.any or origin.lower() in self.origins

    def allow_headers(self, origin: str) -> dict[str, str]:
        headers: dict[str, str] = {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*" if self.any else origin}
        if self.credentials:
            headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        return headers


POLICY = web.AppKey("cors_policy", Policy)


def _add_vary(response: web.StreamResponse) -> None:
    vary = response.headers.get(hdrs.VARY, "")
    if "origin" not in vary.lower():
        response.headers[hdrs.VARY] = f"{vary}, Origin" if vary else "Origin"


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def _same_host(request: web.Request, origin: str) -> bool:
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights; refuse WebSocket handshakes from origins not allowed."""
    policy = request.app[POLICY]
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return await handler(request)
    preflight = (request.method == hdrs.METH_OPTIONS
                 and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers)
    if preflight:
        if not policy.allows(origin):
            raise Forbidden(f"origin {origin} is not allowed (HERALD_CORS_ORIGINS)")
        return web.Response(status=204, headers={
            **policy.allow_headers(origin),
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: policy.max_age,
        })
    if _is_websocket(request) and not (_same_host(request, origin) or policy.allows(origin)):
        raise Forbidden(f"a WebSocket from origin {origin} is not allowed (HERALD_CORS_ORIGINS)")
    return await handler(request)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    policy = request.app[POLICY]
    _add_vary(response)
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or not policy.allows(origin):
        return
    response.headers.update(policy.allow_headers(origin))
    response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED


def setup(app: web.Application, settings: Settings) -> None:
    """Install the policy (nothing when ``HERALD_CORS_ORIGINS`` is empty)."""
    if not settings.cors_origins:
        return
    app[POLICY] = Policy(settings)
    app.middlewares.append(cors_middleware)
    app.on_response_prepare.append(_on_prepare)
