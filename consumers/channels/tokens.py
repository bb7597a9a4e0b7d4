"""Provider access tokens: obtained once, shared by every worker through Redis.

WeChat and WeCom hand out access tokens (a GET with the app's secret), FCM an
OAuth2 token (a signed service-account assertion), and APNs takes a JWT we sign
ourselves but that Apple refuses to see renewed more than once per 20 minutes. In
every case many workers must use one token, and fetch a new one once:

- the token is stored under its key with a PX of its usable lifetime (the
  provider's, less a margin), so nobody uses it after it expires;
- refresh is single-flight across processes: the worker that finds no token takes
  a short lock (``SET NX PX``) and fetches; the others poll the key until the lock
  is free again (then one of them takes it) or its time is up (then they fetch
  themselves: the holder may hang or have died);
- :meth:`SharedToken.invalidate` deletes the token only if it is still the one the
  caller saw (Lua compare-and-delete), so a worker holding a stale token never
  throws away a fresh one (a provider that rejected the token: 40001, 42001, an
  OAuth 401, APNs' ExpiredProviderToken).

Failure: the ``fetch`` function raises :class:`TokenUnavailable` carrying a
``retry`` SendResult (provider busy, bad credentials, timeout); Redis errors
propagate.
"""

from __future__ import annotations

import asyncio
import secrets as random_tokens
import time
from collections.abc import Awaitable, Callable
from typing import Any

from herald.consumers.channels.base import SendResult
from herald.streams.errors import HeraldError
from herald.streams.scripts import register

# Refresh this long before the provider's own expiry (WeChat answers 7200 s).
REFRESH_MARGIN_S = 300.0
# How often a worker waiting for another's refresh looks for the new token.
POLL_INTERVAL_S = 0.05

Fetch = Callable[[], Awaitable[tuple[str, float]]]
"""Obtains a new token: ``(token, lifetime in seconds)``; raises TokenUnavailable."""


class TokenUnavailable(HeraldError):
    """Raised when no access token could be obtained; ``result`` says why (retry)."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail)
        self.result = result


def token_ttl_ms(expires_in: float) -> int:
    """How long to cache a token the provider says lives ``expires_in`` seconds."""
    usable = expires_in - REFRESH_MARGIN_S if expires_in > 2 * REFRESH_MARGIN_S else expires_in / 2
    return max(int(usable * 1000), 1000)


class SharedToken:
    """Get, cache and invalidate one token (see the module doc)."""

    def __init__(self, redis: Any, key: str, lock_key: str, lock_s: float,
                 fetch: Fetch | None = None) -> None:
        self._redis = redis
        self._key = key
        self._lock_key = lock_key
        self._lock_ms = int((lock_s + 1.0) * 1000)
        self._fetch_fn = fetch
        self._drop = register(redis, __file__, "wechat_token_drop")
        self.fetches = 0  # tokens this process fetched (tests, metrics)

    async def get(self) -> str:
        """The current token, fetching one if none is cached; raises TokenUnavailable."""
        deadline = time.monotonic() + self._lock_ms / 1000
        while True:
            cached = await self._redis.get(self._key)
            if cached:
                return bytes(cached).decode()
            lock = random_tokens.token_hex(8)
            if await self._redis.set(self._lock_key, lock, nx=True, px=self._lock_ms):
                try:
                    return await self._refresh()
                finally:
                    await self._drop(keys=[self._lock_key], args=[lock])
            if time.monotonic() >= deadline:
                return await self._refresh()  # the lock holder hangs or died: fetch ourselves
            await asyncio.sleep(POLL_INTERVAL_S)

    async def invalidate(self, token: str) -> bool:
        """Forget ``token`` if it is still the cached one; True if it was deleted."""
        return bool(await self._drop(keys=[self._key], args=[token]))

    async def _refresh(self) -> str:
        cached = await self._redis.get(self._key)  # stored while we took the lock?
        if cached:
            return bytes(cached).decode()
        self.fetches += 1
        token, expires_in = await self._fetch()
        await self._redis.set(self._key, token, px=token_ttl_ms(expires_in))
        return token

    async def _fetch(self) -> tuple[str, float]:
        if self._fetch_fn is None:  # pragma: no cover - subclasses override
            raise NotImplementedError
        return await self._fetch_fn()
