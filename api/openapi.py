"""The OpenAPI 3.1 document, built from the app's :class:`Route` list and schemas.

Nothing here is written by hand per route: paths, parameters, bodies, success
responses and the problem responses each route can give are derived from the same
``Route`` objects that register the handlers, so the document matches the code
(a test also compares it with the app's router, both ways).

Problem statuses per route: 401/429 for authenticated routes; 403 for service-only
routes and ``{user}`` routes; 422 when it has parameters or a body; 400/413 when
it reads a body; 503 (overload, timeout, Redis unreachable) and 500 everywhere;
plus the route's own ``errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from herald.api.errors import PROBLEM_TYPE
from herald.api.routing import Route
from herald.streams.settings import Settings

PROBLEM_TEXT = {
    400: "Malformed request: the body is not JSON.",
    401: "Missing, invalid or expired credentials.",
    403: "The credentials may not act on this resource.",
    404: "Not found (for this user).",
    409: "Conflicts with the current state (see detail): e.g. the idempotency_key was "
         "used within HERALD_DEDUPE_WINDOW for another payload (nothing was appended; "
         "first_id names the first append).",
    413: "The body is over HERALD_MAX_BODY (HERALD_MAX_BATCH_BODY for batches).",
    415: "The Content-Type is not one this operation reads.",
    422: "The request breaks the schema; `errors` names each field.",
    429: "Rate limit reached; retry after Retry-After seconds.",
    500: "Unexpected error (a bug; it was logged).",
    503: "Overloaded, timed out, not ready, or Redis unreachable; retry after Retry-After.",
    507: "The event store is full (its memory limit); nothing was written; retry after "
         "Retry-After.",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "required": True, "schema": {"type": "integer", "minimum": 1}}}


def _version() -> str:
    try:
        return metadata.version("herald")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def problem_statuses(route: Route) -> list[int]:
    """The problem+json statuses ``route`` can answer with."""
    statuses = {500, 503, *route.errors}
    if route.method != "GET":  # it may append: a full store refuses
        statuses.add(507)
    if route.auth != "none":
        statuses |= {401, 429}
        if route.auth == "service" or "{user}" in route.path:
            statuses.add(403)
    if route.params or route.body:
        statuses.add(422)
    if route.body:
        statuses |= {400, 413}
    if route.bodies:
        statuses.add(415)
    return sorted(statuses)


def _problem_response(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": PROBLEM_TEXT.get(status, "Problem."),
        "content": {PROBLEM_TYPE: {"schema": _ref("Problem")}},
    }
    if status in (429, 503, 507):
        out["headers"] = RETRY_AFTER
    return out


def _security(route: Route) -> list[dict[str, list[str]]]:
    if route.auth == "none":
        return []
    if route.auth == "service":
        return [{"serviceKey": []}]
    return [{"serviceKey": []}, {"userToken": []}]


def operation(route: Route) -> dict[str, Any]:
    """One operation object."""
    responses: dict[str, Any] = {}
    for status, reply in sorted(route.replies.items()):
        body: dict[str, Any]
        if reply.content_type == "text/plain":
            body = {"schema": {"type": "string"}}
        else:
            body = {"schema": _ref(reply.schema) if reply.schema else {"type": "object"}}
        responses[str(status)] = {"description": reply.description,
                                  "content": {reply.content_type: body}}
    for status in problem_statuses(route):
        responses[str(status)] = _problem_response(status)
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": _security(route),
        "responses": responses,
    }
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = [
            {"name": p.name, "in": p.location, "required": p.location == "path" or p.required,
             "schema": dict(p.schema), **({"description": p.description} if p.description else {})}
            for p in route.params
        ]
    if route.body:
        op["requestBody"] = {"required": route.body_required, "content": {
            media: {"schema": _ref(name)} for media, name in route.body_schemas().items()}}
    return op


def build_document(
    routes: Sequence[Route], schemas: Mapping[str, Mapping[str, Any]], settings: Settings
) -> dict[str, Any]:
    """The whole document for an app serving ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": _version(),
            "description": (
                "Event-sourced notification broker on Redis Streams. JSON everywhere; errors "
                "are application/problem+json. Authenticate with `Authorization: Bearer "
                "<service key or user token>`; a user token may act only for its own user, "
                "and `me` in a path stands for it."
            ),
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {name: dict(schema) for name, schema in schemas.items()},
            "securitySchemes": {
                "serviceKey": {"type": "http", "scheme": "bearer",
                               "description": "A service API key (HERALD_API_KEYS)."},
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                              "description": "A user token: JWT HS256, `sub` = user, `exp` "
                                             "required (see `herald token`)."},
            },
        },
    }
