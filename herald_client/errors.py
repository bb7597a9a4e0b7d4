"""Errors of the Herald client: every one derives from :class:`HeraldClientError`.

An answer of the API that is an error (4xx/5xx, ``application/problem+json``) raises
:class:`ApiError` — or the subclass for its status — carrying the whole problem
document (``type``, ``title``, ``status``, ``detail``, ``errors`` with field paths,
``request_id``). A request that got no answer (connection refused or reset, a
timeout) raises :class:`TransportError` (:class:`RequestTimeout` for timeouts) once
the retries are spent.
"""

from __future__ import annotations

from typing import Any


class HeraldClientError(Exception):
    """Base of every error this client raises."""


class TransportError(HeraldClientError):
    """Raised when no answer came (connection refused, reset, DNS), retries spent."""


class RequestTimeout(TransportError):
    """Raised when the answer did not come within the client's timeout, retries spent."""


class ApiError(HeraldClientError):
    """Raised for an error answer; ``problem`` is its problem+json document.

    ``status``: the HTTP status; ``detail``: the human sentence; ``errors``: the
    failing fields (``[{"path": "title", "message": ...}]``) of a 422;
    ``request_id``: quote it when asking the operator; ``retry_after``: seconds the
    server asked to wait (429, 503), or None.
    """

    def __init__(self, status: int, problem: dict[str, Any],
                 retry_after: float | None = None) -> None:
        self.status = status
        self.problem = problem
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.errors: list[dict[str, str]] = list(problem.get("errors") or [])
        self.request_id: str | None = problem.get("request_id")
        self.retry_after = retry_after
        super().__init__(f"{status}: {self.detail}")


class BadRequest(ApiError):
    """Raised for 400: the body was not JSON."""


class AuthenticationError(ApiError):
    """Raised for 401: no, malformed, invalid or expired credentials."""


class PermissionDenied(ApiError):
    """Raised for 403: a user token on a service route or on another user's path."""


class NotFound(ApiError):
    """Raised for 404: no such route, notification or inbox item (for this user)."""


class Unprocessable(ApiError):
    """Raised for 422: a field broke a rule; ``errors`` names each one."""


class RateLimited(ApiError):
    """Raised for 429 once the retries are spent; ``retry_after`` says how long to wait."""


class Unavailable(ApiError):
    """Raised for 503 once the retries are spent (overloaded, Redis unreachable, not ready)."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: AuthenticationError, 403: PermissionDenied, 404: NotFound,
    422: Unprocessable, 429: RateLimited, 503: Unavailable,
}


def api_error(status: int, problem: dict[str, Any], retry_after: float | None) -> ApiError:
    """The error for an answer of ``status`` (its subclass when there is one)."""
    return BY_STATUS.get(status, ApiError)(status, problem, retry_after)
