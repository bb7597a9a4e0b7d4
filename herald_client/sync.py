"""``Herald``: the synchronous client (standard library only: urllib).

Thread-safe (no shared connection: each request opens its own). Every method is one
API call with the client's timeout and retries (herald_client/calls.py) and returns
the answer's JSON, typed; errors raise herald_client.errors.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from herald_client import calls
from herald_client.calls import Call, Policy
from herald_client.errors import ApiError, RequestTimeout, TransportError
from herald_client.types import (
    ActionResult,
    BatchResult,
    Cancelled,
    InboxItem,
    InboxPage,
    NotificationStatus,
    Preferences,
    Profile,
    Published,
)


class Herald:
    """A client of one Herald API (``base_url``, e.g. ``http://127.0.0.1:8080``).

    ``api_key``: a service key (acts for any user); or ``token``: a user token (only
    that user, ``"me"``). ``timeout`` is per attempt in seconds; ``retries`` how many
    times a failed attempt is repeated (see calls.py for which).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = calls.DEFAULT_TIMEOUT_S,
                 retries: int = calls.DEFAULT_RETRIES) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        self.base_url = base_url.rstrip("/")
        self.credential = api_key or token
        self.policy = Policy(timeout=timeout, retries=retries)

    def __enter__(self) -> Herald:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (no pooled connections); for symmetry with AsyncHerald."""

    # ------------------------------------------------------------------ transport
    def request(self, call: Call) -> Any:
        """Send ``call`` with retries; its JSON answer, or raise."""
        attempt = 0
        while True:
            try:
                return self._once(call)
            except ApiError as exc:
                if not calls.retryable(exc) or attempt >= self.policy.retries:
                    raise
                wait = self.policy.wait(attempt + 1, exc.retry_after)
            except TransportError:
                if attempt >= self.policy.retries:
                    raise
                wait = self.policy.wait(attempt + 1, None)
            attempt += 1
            time.sleep(wait)

    def _once(self, call: Call) -> Any:
        data = call.payload()
        request = urllib.request.Request(
            call.url(self.base_url), data=data, method=call.method,
            headers=calls.headers(self.credential, data is not None))
        timeout = self.policy.timeout + call.extra_timeout
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return calls.result(answer.status, answer.read(), None)
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            return calls.result(exc.code, raw, exc.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise RequestTimeout(f"{call.method} {call.path}: no answer within "
                                 f"{timeout:g}s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                raise RequestTimeout(f"{call.method} {call.path}: no answer within "
                                     f"{timeout:g}s") from exc
            raise TransportError(f"{call.method} {call.path}: {exc.reason}") from exc
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"{call.method} {call.path}: {exc}") from exc

    # ----------------------------------------------------------------- publishing
    def publish(self, user: str, title: str, *, body: str | None = None,
                category: str | None = None, data: Mapping[str, Any] | None = None,
                channels: Sequence[str] | None = None, idempotency_key: str | None = None,
                deliver_at: datetime | None = None, delay_seconds: float | None = None,
                cancel_key: str | None = None, digest_key: str | None = None,
                digest_window_seconds: float | None = None,
                expires_at: datetime | None = None,
                recipients: Mapping[str, Any] | None = None) -> Published:
        """Append one notification (``POST /v1/notifications``). Without an
        ``idempotency_key`` one is generated, so a retry never appends twice."""
        fields = {"body": body, "category": category, "data": data, "channels": channels,
                  "idempotency_key": idempotency_key, "deliver_at": deliver_at,
                  "delay_seconds": delay_seconds, "cancel_key": cancel_key,
                  "digest_key": digest_key, "digest_window_seconds": digest_window_seconds,
                  "expires_at": expires_at, "recipients": recipients}
        return cast(Published, self.request(calls.publish(user, title, fields)))

    def publish_batch(self, notifications: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Append up to ``HERALD_MAX_BATCH`` notifications (each a dict like
        :meth:`publish`'s arguments, with ``user`` and ``title``); per-item results."""
        return cast(BatchResult, self.request(calls.publish_batch(notifications)))

    def schedule(self, user: str, title: str, *, at: datetime | None = None,
                 delay: float | timedelta | None = None, cancel_key: str | None = None,
                 **fields: Any) -> Published:
        """Deliver later: ``at`` a time or after ``delay`` (seconds or a timedelta),
        cancellable by ``cancel_key`` (:meth:`cancel`)."""
        return cast(Published, self.request(
            calls.schedule(user, title, at, delay, {"cancel_key": cancel_key, **fields})))

    def cancel(self, cancel_key: str, *, user: str | None = None) -> Cancelled:
        """Cancel what is scheduled under ``cancel_key`` and not yet due (NotFound if none)."""
        return cast(Cancelled, self.request(calls.cancel(cancel_key, user)))

    def status(self, notification_id: str) -> NotificationStatus:
        """A notification and its per-channel delivery state (NotFound when unknown)."""
        return cast(NotificationStatus, self.request(calls.status(notification_id)))

    # ---------------------------------------------------------------------- inbox
    def inbox(self, user: str, *, status: str | None = None, limit: int | None = None,
              cursor: str | None = None, after: str | None = None,
              wait: float | None = None, as_of: str | datetime | None = None) -> InboxPage:
        """One page, newest first (``after`` + ``wait``: long-poll for newer items)."""
        return cast(InboxPage, self.request(
            calls.inbox(user, status, limit, cursor, after, wait, as_of)))

    def iter_inbox(self, user: str, *, status: str | None = None,
                   page_size: int = 100) -> Iterator[InboxItem]:
        """Every item, newest first, following ``next_cursor`` page by page."""
        cursor: str | None = None
        while True:
            page = self.inbox(user, status=status, limit=page_size, cursor=cursor)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def unread_count(self, user: str) -> int:
        return int(self.request(calls.unread_count(user))["unread_count"])

    def mark_read(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, self.request(calls.action(user, item_id, "read")))

    def mark_unread(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, self.request(calls.action(user, item_id, "unread")))

    def archive(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, self.request(calls.action(user, item_id, "archive")))

    def delete(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, self.request(calls.delete_item(user, item_id)))

    def mark_all_read(self, user: str, *, up_to: str | None = None) -> ActionResult:
        return cast(ActionResult, self.request(calls.read_all(user, up_to)))

    # ---------------------------------------------------------------------- users
    def preferences(self, user: str) -> Preferences:
        return cast(Preferences, self.request(calls.get("preferences", user)))

    def set_preferences(self, user: str, preferences: Mapping[str, Mapping[str, bool]]
                        ) -> ActionResult:
        return cast(ActionResult, self.request(
            calls.put("preferences", user, {"preferences": preferences})))

    def profile(self, user: str) -> Profile:
        return cast(Profile, self.request(calls.get("profile", user)))

    def set_profile(self, user: str, **fields: str) -> ActionResult:
        """Delivery addresses: ``phone``, ``email``, ``wechat_openid``, ``webhook_url``,
        ``webhook_secret``."""
        return cast(ActionResult, self.request(calls.put("profile", user, fields)))

    def erase_user(self, user: str) -> ActionResult:
        """Forget a user: content unreadable everywhere, state removed."""
        return cast(ActionResult, self.request(calls.erase(user)))

    # ---------------------------------------------------------------- operations
    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.request(calls.HEALTH))

    def ready(self) -> dict[str, Any]:
        """Readiness; raises Unavailable (503) when Redis or the projector lags."""
        return cast(dict[str, Any], self.request(calls.READY))

    def dev_token(self, user: str) -> str:
        """A user token from a development server (``HERALD_DEV=true`` only); in
        production mint tokens in your backend (herald_client.mint_token)."""
        return str(self.request(calls.dev_token(user))["token"])
