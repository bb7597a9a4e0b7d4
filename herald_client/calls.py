"""What the sync and async clients share: each operation as a :class:`Call` (method,
path, query, JSON body), the retry policy, and reading an answer. No I/O here.

Retries: a call is sent again after a connection error, a timeout, or a 429 / 502 /
503 / 504 answer, up to ``retries`` more times, waiting ``Retry-After`` when the
server gave one (capped at ``max_backoff``), else a doubling back-off with jitter.
Every Herald operation is safe to repeat: a publish carries an idempotency key —
the caller's, or one generated once per call before the first attempt (each batch
item gets its own) — so a retried publish answers the first append (``duplicate``)
instead of appending twice; inbox actions and PUTs set a state; GETs only read.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from herald_client.errors import ApiError, api_error

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 3
BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0
USER_AGENT = "herald-client/1"


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request of an operation."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    extra_timeout: float = 0.0  # a long-poll holds the request this much longer

    def url(self, base: str) -> str:
        query = {k: _text(v) for k, v in self.query.items() if v is not None}
        return base + self.path + (f"?{urlencode(query)}" if query else "")

    def payload(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body, default=str).encode()


@dataclass(frozen=True, slots=True)
class Policy:
    """Timeouts and retries of a client (see the module docstring)."""

    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff: float = BACKOFF_S
    max_backoff: float = MAX_BACKOFF_S

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff) * (
            0.5 + random.random() / 2)


def headers(credential: str | None, with_body: bool) -> dict[str, str]:
    out = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if credential:
        out["Authorization"] = f"Bearer {credential}"
    if with_body:
        out["Content-Type"] = "application/json"
    return out


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def result(status: int, raw: bytes, retry_after_header: str | None) -> Any:
    """The JSON of a 2xx answer, else raise the ApiError of the answer."""
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    if 200 <= status < 300:
        return doc
    if not isinstance(doc, dict):
        doc = {"status": status, "title": "HTTP error",
               "detail": raw[:500].decode(errors="replace") or f"HTTP {status}"}
    raise api_error(status, doc, retry_after(retry_after_header))


def retryable(error: ApiError) -> bool:
    return error.status in RETRY_STATUSES


# ----------------------------------------------------------------------- operations
def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return rfc3339(value)
    return str(value)


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def seg(value: str) -> str:
    """A path segment, escaped."""
    return quote(str(value), safe="")


def new_key() -> str:
    """A fresh idempotency key (made once per call, reused by its retries)."""
    return "hc-" + uuid.uuid4().hex


def notification(user: str, title: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A NotificationRequest body with an idempotency key (the caller's or a new one)."""
    body: dict[str, Any] = {"user": user, "title": title}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = rfc3339(value)
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, tuple):
            value = list(value)
        body[name] = value
    body.setdefault("idempotency_key", new_key())
    return body


def publish(user: str, title: str, fields: Mapping[str, Any]) -> Call:
    return Call("POST", "/v1/notifications", body=notification(user, title, fields))


def schedule(user: str, title: str, at: datetime | None, delay: float | timedelta | None,
             fields: Mapping[str, Any]) -> Call:
    if (at is None) == (delay is None):
        raise ValueError("give exactly one of at= or delay=")
    when = {"deliver_at": at} if at is not None else {"delay_seconds": delay}
    return publish(user, title, {**fields, **when})


def publish_batch(items: Sequence[Mapping[str, Any]]) -> Call:
    body = []
    for item in items:
        copy = dict(item)
        user, title = copy.pop("user", None), copy.pop("title", None)
        body.append(notification(user, title, copy))  # type: ignore[arg-type]
    return Call("POST", "/v1/notifications/batch", body={"notifications": body})


def cancel(cancel_key: str, user: str | None) -> Call:
    return Call("DELETE", f"/v1/scheduled/{seg(cancel_key)}", query={"user": user})


def status(notification_id: str) -> Call:
    return Call("GET", f"/v1/notifications/{seg(notification_id)}")


def inbox(user: str, status: str | None, limit: int | None, cursor: str | None,
          after: str | None, wait: float | None, as_of: str | datetime | None) -> Call:
    query = {"status": status, "limit": limit, "cursor": cursor, "after": after,
             "wait": wait, "as_of": as_of}
    return Call("GET", f"/v1/users/{seg(user)}/inbox", query=query, extra_timeout=wait or 0.0)


def unread_count(user: str) -> Call:
    return Call("GET", f"/v1/users/{seg(user)}/unread_count")


def action(user: str, item_id: str, verb: str) -> Call:
    return Call("POST", f"/v1/users/{seg(user)}/inbox/{seg(item_id)}/{verb}")


def delete_item(user: str, item_id: str) -> Call:
    return Call("DELETE", f"/v1/users/{seg(user)}/inbox/{seg(item_id)}")


def read_all(user: str, up_to: str | None) -> Call:
    return Call("POST", f"/v1/users/{seg(user)}/inbox/read_all",
                body={} if up_to is None else {"up_to": up_to})


def get(path: str, user: str) -> Call:
    return Call("GET", f"/v1/users/{seg(user)}/{path}")


def put(path: str, user: str, body: Mapping[str, Any]) -> Call:
    return Call("PUT", f"/v1/users/{seg(user)}/{path}", body=dict(body))


def erase(user: str) -> Call:
    return Call("DELETE", f"/v1/users/{seg(user)}")


def dev_token(user: str) -> Call:
    return Call("POST", "/v1/dev/token", query={"user": user})


HEALTH = Call("GET", "/healthz")
READY = Call("GET", "/readyz")
