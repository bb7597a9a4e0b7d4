"""Errors of the HTTP edge and the one middleware that turns every error into problem+json.

Handlers raise :class:`Problem` subclasses (or let domain errors through); the
middleware answers ``application/problem+json`` (RFC 9457) with ``type``,
``title``, ``status``, ``detail``, ``instance`` and ``request_id``, plus ``errors``
(field paths) for validation and a ``Retry-After`` header for 429/503.

Mapping: Problem → its status; aiohttp's own HTTP errors (404 unknown route, 405
wrong method with ``Allow``, 413 body over ``HERALD_MAX_BODY``) → the same status;
``streams`` ValidationError → 422 naming the field; Redis unreachable → 503;
anything else is a bug: logged with its traceback and answered as a 500 problem
that reveals nothing of the internals.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import redis
from aiohttp import web

from herald.streams.connection import TRANSIENT_ERRORS
from herald.streams.errors import (
    IdempotencyConflictError,
    NotDurableError,
    RedisUnavailableError,
    ValidationError,
)
from herald.streams.log import get_logger

log = get_logger(__name__)
PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "urn:herald:problem:"
REQUEST_ID = web.RequestKey("request_id", str)


class Problem(Exception):
    """An HTTP error answered as problem+json; subclasses fix status and slug."""

    status = 500
    slug = "internal"
    title = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BadRequest(Problem):
    """Raised when the body is not JSON (malformed, empty when required, bad UTF-8)."""

    status, slug, title = 400, "malformed", "Malformed request"


class Unauthorized(Problem):
    """Raised for missing, malformed, invalid or expired credentials."""

    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Problem):
    """Raised when valid credentials may not act on this resource or route."""

    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    """Raised for an unknown route or an item that is absent for this user."""

    status, slug, title = 404, "not_found", "Not found"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method_not_allowed", "Method not allowed"


class Conflict(Problem):
    """Raised when the request conflicts with the current state: an idempotency key
    used within the window for another payload (``first_id`` / ``first_position`` name
    the first append under it), a template version registered meanwhile, a device
    limit reached."""

    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    """Raised when the body is over ``HERALD_MAX_BODY``."""

    status, slug, title = 413, "too_large", "Payload too large"


class UnsupportedMediaType(Problem):
    """Raised when a route that reads several media types gets another Content-Type."""

    status, slug, title = 415, "unsupported_media_type", "Unsupported media type"


class Unprocessable(Problem):
    """Raised when a request is JSON but breaks the schema; ``errors`` name the fields."""

    status, slug, title = 422, "validation", "Validation failed"


class TooManyRequests(Problem):
    """Raised when a key's or user's request rate limit is spent (with Retry-After)."""

    status, slug, title = 429, "rate_limited", "Too many requests"


class Unavailable(Problem):
    """Raised when overloaded, timed out, or Redis is unreachable (with Retry-After)."""

    status, slug, title = 503, "unavailable", "Service unavailable"


class InsufficientStorage(Problem):
    """Raised when the event store refuses writes at its memory limit (with Retry-After)."""

    status, slug, title = 507, "store_full", "Insufficient storage"


def conflict(first_id: str, first_position: str) -> Conflict:
    """The 409 of an idempotency key reused for another payload."""
    return Conflict("idempotency_key was used within HERALD_DEDUPE_WINDOW for another "
                    "payload; nothing was appended (use a new key for new content)",
                    extra={"first_id": first_id, "first_position": first_position})


def field_error(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def problem_response(request: web.Request, problem: Problem) -> web.Response:
    """The problem+json response for ``problem`` (adds Retry-After when set)."""
    doc: dict[str, Any] = {
        "type": TYPE_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.path,
        "request_id": request.get(REQUEST_ID, ""),
    }
    if problem.errors is not None:
        doc["errors"] = problem.errors
    doc.update(problem.extra)
    headers = dict(problem.headers)
    if problem.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="herald"')
    if problem.retry_after is not None:
        seconds = max(1, math.ceil(problem.retry_after))
        headers["Retry-After"] = str(seconds)
        doc["retry_after"] = seconds
    return web.Response(
        body=orjson.dumps(doc), status=problem.status, content_type=PROBLEM_TYPE, headers=headers
    )


_HTTP_PROBLEMS: dict[int, type[Problem]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def from_http_exception(exc: web.HTTPException) -> Problem:
    """aiohttp's own 4xx (router misses, body limit) as a Problem."""
    cls = _HTTP_PROBLEMS.get(exc.status)
    if exc.status == 404:
        return NotFound("no route matches this path")
    if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(f"allowed methods: {allowed}", headers={"Allow": allowed})
    if exc.status == 413:
        return PayloadTooLarge(f"the request body is over the limit: {exc.text or ''}".strip())
    if cls is None:
        problem = Problem(exc.reason)
        problem.status, problem.title, problem.slug = exc.status, exc.reason, "http"
        return problem
    return cls(exc.text or exc.reason)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


UNAVAILABLE: tuple[type[Exception], ...] = (RedisUnavailableError, *TRANSIENT_ERRORS)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as problem+json; never let an exception reach aiohttp."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(request, problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(request, from_http_exception(exc))
    except ValidationError as exc:
        return problem_response(
            request, Unprocessable(str(exc), errors=[field_error(exc.field, exc.message)])
        )
    except IdempotencyConflictError as exc:
        return problem_response(request, conflict(exc.first_id, exc.position))
    except redis.exceptions.OutOfMemoryError as exc:  # maxmemory, noeviction: no write
        log.error("store_full", error=str(exc), path=request.path)
        return problem_response(request, InsufficientStorage(
            "the event store is at its memory limit (maxmemory); nothing was written. "
            "Retry later; operators: raise maxmemory or let retention trim the log",
            retry_after=5))
    except NotDurableError as exc:  # appended, not confirmed: the message says what to do
        log.warning("publish_not_durable", error=str(exc), path=request.path)
        return problem_response(request, Unavailable(str(exc), retry_after=1))
    except UNAVAILABLE as exc:
        log.warning("redis_unavailable", error=str(exc), path=request.path)
        return problem_response(
            request, Unavailable("the event store is unreachable; try again", retry_after=1)
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return problem_response(request, Problem("an unexpected error occurred; it was logged"))
