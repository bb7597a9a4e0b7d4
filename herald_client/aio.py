"""``AsyncHerald``: the asyncio client (aiohttp), the same operations as ``Herald``.

Use it as ``async with AsyncHerald(url, api_key=...) as herald:`` (or call
:meth:`AsyncHerald.aclose`): it keeps one pooled session, made on first use inside
the running loop. Timeouts and retries: herald_client/calls.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import aiohttp

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


class AsyncHerald:
    """See :class:`herald_client.Herald`; every method is a coroutine."""

    def __init__(self, base_url: str, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = calls.DEFAULT_TIMEOUT_S,
                 retries: int = calls.DEFAULT_RETRIES) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        self.base_url = base_url.rstrip("/")
        self.credential = api_key or token
        self.policy = Policy(timeout=timeout, retries=retries)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncHerald:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled session (safe to call twice)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # ------------------------------------------------------------------ transport
    async def request(self, call: Call) -> Any:
        """Send ``call`` with retries; its JSON answer, or raise."""
        attempt = 0
        while True:
            try:
                return await self._once(call)
            except ApiError as exc:
                if not calls.retryable(exc) or attempt >= self.policy.retries:
                    raise
                wait = self.policy.wait(attempt + 1, exc.retry_after)
            except TransportError:
                if attempt >= self.policy.retries:
                    raise
                wait = self.policy.wait(attempt + 1, None)
            attempt += 1
            await asyncio.sleep(wait)

    async def _once(self, call: Call) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        data = call.payload()
        timeout = self.policy.timeout + call.extra_timeout
        try:
            async with self._session.request(
                    call.method, call.url(self.base_url), data=data,
                    headers=calls.headers(self.credential, data is not None),
                    timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
                raw = await answer.read()
                return calls.result(answer.status, raw, answer.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise RequestTimeout(f"{call.method} {call.path}: no answer within "
                                 f"{timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{call.method} {call.path}: {exc}") from exc

    # ----------------------------------------------------------------- publishing
    async def publish(self, user: str, title: str, *, body: str | None = None,
                      category: str | None = None, data: Mapping[str, Any] | None = None,
                      channels: Sequence[str] | None = None,
                      idempotency_key: str | None = None, deliver_at: datetime | None = None,
                      delay_seconds: float | None = None, cancel_key: str | None = None,
                      digest_key: str | None = None,
                      digest_window_seconds: float | None = None,
                      expires_at: datetime | None = None,
                      recipients: Mapping[str, Any] | None = None) -> Published:
        """Append one notification; without an ``idempotency_key`` one is generated."""
        fields = {"body": body, "category": category, "data": data, "channels": channels,
                  "idempotency_key": idempotency_key, "deliver_at": deliver_at,
                  "delay_seconds": delay_seconds, "cancel_key": cancel_key,
                  "digest_key": digest_key, "digest_window_seconds": digest_window_seconds,
                  "expires_at": expires_at, "recipients": recipients}
        return cast(Published, await self.request(calls.publish(user, title, fields)))

    async def publish_batch(self, notifications: Sequence[Mapping[str, Any]]) -> BatchResult:
        return cast(BatchResult, await self.request(calls.publish_batch(notifications)))

    async def schedule(self, user: str, title: str, *, at: datetime | None = None,
                       delay: float | timedelta | None = None, cancel_key: str | None = None,
                       **fields: Any) -> Published:
        return cast(Published, await self.request(
            calls.schedule(user, title, at, delay, {"cancel_key": cancel_key, **fields})))

    async def cancel(self, cancel_key: str, *, user: str | None = None) -> Cancelled:
        return cast(Cancelled, await self.request(calls.cancel(cancel_key, user)))

    async def status(self, notification_id: str) -> NotificationStatus:
        return cast(NotificationStatus, await self.request(calls.status(notification_id)))

    # ---------------------------------------------------------------------- inbox
    async def inbox(self, user: str, *, status: str | None = None, limit: int | None = None,
                    cursor: str | None = None, after: str | None = None,
                    wait: float | None = None, as_of: str | datetime | None = None
                    ) -> InboxPage:
        return cast(InboxPage, await self.request(
            calls.inbox(user, status, limit, cursor, after, wait, as_of)))

    async def iter_inbox(self, user: str, *, status: str | None = None,
                         page_size: int = 100) -> AsyncIterator[InboxItem]:
        cursor: str | None = None
        while True:
            page = await self.inbox(user, status=status, limit=page_size, cursor=cursor)
            for item in page.get("items", []):
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def unread_count(self, user: str) -> int:
        return int((await self.request(calls.unread_count(user)))["unread_count"])

    async def mark_read(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, await self.request(calls.action(user, item_id, "read")))

    async def mark_unread(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, await self.request(calls.action(user, item_id, "unread")))

    async def archive(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, await self.request(calls.action(user, item_id, "archive")))

    async def delete(self, user: str, item_id: str) -> ActionResult:
        return cast(ActionResult, await self.request(calls.delete_item(user, item_id)))

    async def mark_all_read(self, user: str, *, up_to: str | None = None) -> ActionResult:
        return cast(ActionResult, await self.request(calls.read_all(user, up_to)))

    # ---------------------------------------------------------------------- users
    async def preferences(self, user: str) -> Preferences:
        return cast(Preferences, await self.request(calls.get("preferences", user)))

    async def set_preferences(self, user: str,
                              preferences: Mapping[str, Mapping[str, bool]]) -> ActionResult:
        return cast(ActionResult, await self.request(
            calls.put("preferences", user, {"preferences": preferences})))

    async def profile(self, user: str) -> Profile:
        return cast(Profile, await self.request(calls.get("profile", user)))

    async def set_profile(self, user: str, **fields: str) -> ActionResult:
        return cast(ActionResult, await self.request(calls.put("profile", user, fields)))

    async def erase_user(self, user: str) -> ActionResult:
        return cast(ActionResult, await self.request(calls.erase(user)))

    # ---------------------------------------------------------------- operations
    async def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request(calls.HEALTH))

    async def ready(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request(calls.READY))

    async def dev_token(self, user: str) -> str:
        return str((await self.request(calls.dev_token(user)))["token"])
