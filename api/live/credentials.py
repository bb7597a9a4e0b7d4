"""Browser credentials for the live routes: a query parameter or a cookie.

``EventSource`` and the browser ``WebSocket`` cannot set an ``Authorization``
header, so on ``GET /v1/users/{user}/events`` and ``…/ws`` (and only there) a
request without that header may carry the same credential as
``?access_token=<token>`` (RFC 6750 §2.3) or in the cookie :data:`COOKIE`. The
middleware turns it into ``Authorization: Bearer <token>``, so authentication,
rate limits and ``{user}`` checks are exactly those of every route.

Security notes: the access log records the path without the query string, so a
token in the URL is not logged by Herald (proxies may log it: prefer short-lived
user tokens). A cookie is sent by the browser to cross-site WebSocket handshakes
too, so a cookie credential on the WebSocket route is refused (403) when the
``Origin`` header names another host than the one addressed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web
from multidict import CIMultiDict

from herald.api.errors import Forbidden, Handler

QUERY = "access_token"
COOKIE = "herald_token"
LIVE_SUFFIXES = ("/events", "/ws")


def _is_live(request: web.Request) -> bool:
    path = request.path
    return (request.method == "GET" and path.startswith("/v1/users/")
            and path.endswith(LIVE_SUFFIXES))


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get(hdrs.ORIGIN)
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


@web.middleware
async def browser_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Promote ``access_token`` / the cookie to an Authorization header on live routes."""
    if hdrs.AUTHORIZATION in request.headers or not _is_live(request):
        return await handler(request)
    token = request.query.get(QUERY)
    if not token:
        token = request.cookies.get(COOKIE)
        if token and request.path.endswith("/ws") and not _same_origin(request):
            raise Forbidden("a cookie credential is not accepted from another origin; "
                            "pass ?access_token= instead")
    if not token:
        return await handler(request)
    headers = CIMultiDict(request.headers)
    headers[hdrs.AUTHORIZATION] = f"Bearer {token.strip()}"
    return await handler(request.clone(headers=headers))
