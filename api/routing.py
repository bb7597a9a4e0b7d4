"""Declarative routes: one :class:`Route` both registers a handler and documents it.

A route module exposes ``routes(settings) -> list[Route]``; ``create_app`` adds
the routes of every module it is given, and api/openapi.py builds the document
from the same list. That is the extension point: a new feature's routes are a new
module (as live push, delivery, schedules and pages are), with no edits to handlers.

The endpoint wrapper does, in order: authenticate (401) → rate limit (429) →
require a service key where needed (403) → resolve ``{user}`` for the caller
(403 for another user's, before any lookup) → coerce and validate path and query
parameters (422) → read and validate the JSON body (400/413/422) → run the
handler under ``HERALD_REQUEST_TIMEOUT`` (503 when it runs out). Handlers receive
a :class:`Call` and never parse input themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from herald.api.auth import Principal, act_for, check_not_revoked, require_service
from herald.api.context import AUTH, LIMITER, METRICS, QUERIES, SETTINGS
from herald.api.errors import (
    TooManyRequests,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    field_error,
)
from herald.api.jsonio import JSON_TYPE, NO_BODY, read_json
from herald.api.schemas import ID_PATTERN, NOTIFICATION_ID, USER_PATTERN, check, coerce
from herald.api.scopes import FALLBACK, require_scope, scope_for
from herald.streams.events import APPENDED_BY
from herald.streams.settings import Settings

PRINCIPAL = web.RequestKey("principal", Principal)
# Loop time by which the request must have answered (or, for a stream, started):
# now + HERALD_REQUEST_TIMEOUT when it arrives.
DEADLINE = web.RequestKey("deadline", float)
Auth = Literal["none", "service", "user"]


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter; query values missing use ``schema['default']``."""

    name: str
    location: Literal["path", "query"]
    schema: Mapping[str, Any]
    required: bool = False
    description: str = ""
    match: str | None = None  # path only: a regex the router matches (others are 404)


# The ``{user}`` of a path, as every per-user route takes it (api/auth.py ``act_for``),
# and the ``{id}`` of a notification.
USER_PARAM = Param("user", "path", {"type": "string", "pattern": USER_PATTERN}, True,
                   "The user id, or `me` with a user token (403 with a service key).")
ID_PARAM = Param("id", "path", NOTIFICATION_ID, True,
                 "The notification id (anything else matches no route: 404).",
                 match=ID_PATTERN.strip("^$"))


@dataclass(frozen=True, slots=True)
class Reply:
    """A documented success response: its schema (component name) and media type."""

    description: str
    schema: str | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: method, path template, handler and everything the document says.

    ``auth``: ``none`` (anyone), ``service`` (service key only) or ``user`` (a
    service key, or a user token for its own ``{user}``). ``errors`` adds
    route-specific problem statuses (e.g. 404) to the ones derived from the rest.
    ``timeout=False`` is for streaming routes that manage their own lifetime.
    """

    method: str
    path: str
    handler: Callable[[Call], Awaitable[web.StreamResponse]]
    operation_id: str
    summary: str
    tag: str
    auth: Auth
    replies: Mapping[int, Reply]
    params: tuple[Param, ...] = ()
    body: str | None = None
    body_required: bool = True
    errors: tuple[int, ...] = ()
    description: str = ""
    timeout: bool = True
    rate_cost: int = 1
    batch_body: bool = False  # the body may reach HERALD_MAX_BATCH_BODY, not HERALD_MAX_BODY
    # Media types besides application/json, each with its body schema: with any, the
    # Content-Type must be one of them or application/json (415 otherwise), and the
    # handler sees which in ``Call.media_type``.
    bodies: tuple[tuple[str, str], ...] = ()
    # Called with a body the schema refused: it may raise its own Unprocessable that names
    # every error in the words of the domain (a workflow definition's steps); when it
    # returns, the schema's 422 stands.
    explain_body: Callable[[web.Application, Any], Awaitable[None]] | None = None

    def body_schemas(self) -> dict[str, str]:
        """Media type → body schema name, as documented."""
        out = {JSON_TYPE: self.body} if self.body else {}
        out.update(self.bodies)
        return out


# The app's routes, as create_app registered them (api/openapi.py documents them).
ROUTES: web.AppKey[list[Route]] = web.AppKey("routes")


@dataclass(slots=True)
class Call:
    """A validated request: who calls, for which user, with which parameters and body."""

    request: web.Request
    principal: Principal | None
    user: str | None
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    media_type: str = JSON_TYPE  # of the body (a route with ``bodies``)

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def settings(self) -> Settings:
        return self.request.app[SETTINGS]

    @property
    def owner(self) -> str:
        """The user a ``{user}`` route acts for (resolved and authorized)."""
        if self.user is None:
            raise RuntimeError("this route has no {user} segment")
        return self.user


def _query(request: web.Request, params: Sequence[Param]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in params:
        values = request.query.getall(p.name, [])
        path = f"query.{p.name}"
        if len(values) > 1:
            raise Unprocessable(f"{path} is given more than once",
                                errors=[field_error(path, "is given more than once")])
        if not values:
            if p.required:
                raise Unprocessable(f"{path} is required",
                                    errors=[field_error(path, "is required")])
            out[p.name] = p.schema.get("default")
            continue
        out[p.name] = coerce(p.schema, values[0], path)
    return out


def make_endpoint(
    route: Route, body_schema: Mapping[str, Any] | None,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler that validates a request and calls ``route.handler``
    (``schemas``: every named schema, for a route with several body media types)."""
    by_type = {media: (schemas or {})[name] for media, name in route.body_schemas().items()
               } if route.bodies else {}
    path_params = [p for p in route.params if p.location == "path" and p.name != "user"]
    query_params = [p for p in route.params if p.location == "query"]
    has_user = "{user}" in route.path
    needed = scope_for(route.auth, route.operation_id)

    async def validated(request: web.Request) -> web.StreamResponse:
        app = request.app
        settings = app[SETTINGS]
        principal: Principal | None = None
        if route.auth != "none":
            principal = app[AUTH].authenticate(request.headers.get("Authorization"))
            request[PRINCIPAL] = principal
            try:
                async with until_deadline(request):
                    await app[LIMITER].check(principal, route.rate_cost)
            except TooManyRequests:
                app[METRICS].rate_limited.labels("key" if principal.is_service else "user").inc()
                raise
            if route.auth == "service":
                require_service(principal)
            if principal.is_service:
                require_scope(principal.scopes, needed or FALLBACK, principal.subject)
            else:  # one read: a token issued before "sign out everywhere" is refused
                async with until_deadline(request):
                    epoch = await app[QUERIES].token_epoch(principal.subject)
                check_not_revoked(principal, epoch)
            APPENDED_BY.set(principal.actor)  # this request's task only
        user = act_for(principal, request.match_info["user"]) if has_user and principal else None
        call = Call(request, principal, user)
        for p in path_params:
            call.path[p.name] = coerce(p.schema, request.match_info[p.name], f"path.{p.name}")
        call.query = _query(request, query_params)
        schema = body_schema
        if by_type:
            call.media_type = request.content_type if request.content_type in by_type \
                else JSON_TYPE if request.content_type in ("", "application/octet-stream") \
                else ""
            if not call.media_type:
                raise UnsupportedMediaType(
                    f"Content-Type {request.content_type!r} is not accepted here; use one "
                    f"of {', '.join(by_type)}")
            schema = by_type[call.media_type]
        if schema is not None:
            limit = settings.max_batch_body_bytes if route.batch_body else settings.max_body_bytes
            body = await read_json(request, limit, required=route.body_required)
            if body is not NO_BODY:
                try:
                    check(schema, body)
                except Unprocessable:
                    if route.explain_body is not None:
                        await route.explain_body(request.app, body)  # its own, precise 422
                    raise
                call.body = body
        if request.method == "HEAD" and not route.timeout and 200 in route.replies:
            return web.Response(status=200, content_type=route.replies[200].content_type)
        return await route.handler(call)

    async def endpoint(request: web.Request) -> web.StreamResponse:
        seconds = request.app[SETTINGS].request_timeout_s
        request[DEADLINE] = asyncio.get_running_loop().time() + seconds
        if not route.timeout:  # a stream: bounded until it starts (until_deadline)
            return await validated(request)
        try:  # the limit covers a slowly sent body too, not only the handler
            async with asyncio.timeout(seconds) as scope:
                return await validated(request)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise Unavailable(f"the request took longer than {seconds:g}s; try again",
                              retry_after=1) from exc

    endpoint.__name__ = route.operation_id
    return endpoint


@contextlib.asynccontextmanager
async def until_deadline(request: web.Request) -> AsyncIterator[None]:
    """Bound a step by the request's deadline (:data:`DEADLINE`): 503 when it passes.
    Routes with a timeout are bounded as a whole already; a stream bounds each step
    before it starts sending with this."""
    deadline = request.get(DEADLINE)
    if deadline is None:
        yield
        return
    try:
        async with asyncio.timeout_at(deadline) as scope:
            yield
    except TimeoutError as exc:
        if not scope.expired():
            raise
        seconds = request.app[SETTINGS].request_timeout_s
        raise Unavailable(f"the request took longer than {seconds:g}s; try again",
                          retry_after=1) from exc


def add_routes(
    app: web.Application, routes: Sequence[Route], schemas: Mapping[str, Mapping[str, Any]]
) -> None:
    """Register every route on the app's router, and ``HEAD`` beside every ``GET``.

    ``HEAD`` runs the same checks and handler as ``GET`` (RFC 9110: the same headers,
    no body; aiohttp drops the body); on a stream it answers the headers without
    opening the stream. The document lists the ``GET`` only."""
    for route in routes:
        body_schema = schemas[route.body] if route.body else None
        path = route.path
        for p in route.params:
            if p.location == "path" and p.match:
                path = path.replace(f"{{{p.name}}}", f"{{{p.name}:{p.match}}}")
        endpoint = make_endpoint(route, body_schema, schemas)
        app.router.add_route(route.method, path, endpoint, name=route.operation_id)
        if route.method == "GET":
            app.router.add_route("HEAD", path, endpoint, name=f"{route.operation_id}_head")
