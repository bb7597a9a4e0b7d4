"""The WeChat access token: fetched once, shared by every worker through Redis.

``GET {base}/cgi-bin/token?grant_type=client_credential&appid=…&secret=…``
answers ``{"access_token", "expires_in"}``. The token is stored under
``Keys.wechat_token(appid)`` with a PX of its lifetime less a margin, so every
worker process uses the same one and nobody uses it after it expires.

Refresh is single-flight across processes: the worker that finds no token takes
a short lock (``SET NX PX``) and fetches; the others poll the key until the
lock is free again (then one of them takes it) or its time is up (then they
fetch themselves: the holder may hang or have died).
:meth:`AccessTokens.invalidate` deletes the token only if it is still the one
the caller saw (Lua compare-and-delete), so a worker holding a stale token never
throws away a fresh one. Fetching a new token invalidates the old one at WeChat
after a grace period, so concurrent fetches are harmless, just wasteful.

Failure: :class:`TokenUnavailable` carries a ``retry`` SendResult (WeChat busy,
bad app id or secret, timeout); Redis errors propagate.
"""

from __future__ import annotations

import asyncio
import secrets as random_tokens
import time
from typing import Any

import orjson

from herald.consumers.channels.base import TRANSPORT_ERRORS, HttpSession, SendResult, error_detail
from herald.streams.errors import HeraldError
from herald.streams.keys import Keys
from herald.streams.scripts import register
from herald.streams.settings import Settings

# Refresh this long before WeChat's own expiry (it answers 7200 s).
REFRESH_MARGIN_S = 300.0
# How often a worker waiting for another's refresh looks for the new token.
POLL_INTERVAL_S = 0.05


class TokenUnavailable(HeraldError):
    """Raised when no access token could be obtained; ``result`` says why (retry)."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail)
        self.result = result


def token_ttl_ms(expires_in: float) -> int:
    """How long to cache a token WeChat says lives ``expires_in`` seconds."""
    usable = expires_in - REFRESH_MARGIN_S if expires_in > 2 * REFRESH_MARGIN_S else expires_in / 2
    return max(int(usable * 1000), 1000)


class AccessTokens:
    """Get, cache and invalidate the app's access token (see the module doc)."""

    def __init__(self, redis: Any, settings: Settings, http: HttpSession) -> None:
        keys = Keys(settings.prefix)
        self._redis = redis
        self._settings = settings
        self._http = http
        self._key = keys.wechat_token(settings.wechat_appid)
        self._lock_key = keys.wechat_token_lock(settings.wechat_appid)
        self._lock_ms = int((settings.wechat_timeout_s + 1.0) * 1000)
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
        token, expires_in = await self._fetch()
        await self._redis.set(self._key, token, px=token_ttl_ms(expires_in))
        return token

    async def _fetch(self) -> tuple[str, float]:
        params = {
            "grant_type": "client_credential",
            "appid": self._settings.wechat_appid,
            "secret": self._settings.wechat_secret,
        }
        url = self._settings.wechat_base_url.rstrip("/") + "/cgi-bin/token"
        self.fetches += 1
        try:
            async with self._http.get().get(url, params=params) as response:
                status = response.status
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:  # the message never names the secret
            raise TokenUnavailable(
                SendResult.retry(f"access token fetch: {error_detail(exc)}")
            ) from exc
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        if status != 200 or not isinstance(document, dict):
            raise TokenUnavailable(
                SendResult.retry(f"access token fetch: HTTP {status}", code=status)
            )
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            errcode = document.get("errcode")
            raise TokenUnavailable(
                SendResult.retry(
                    f"access token fetch: errcode {errcode}: {document.get('errmsg', '')}",
                    code=errcode if isinstance(errcode, int) else None,
                )
            )
        expires_in = document.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, int | float) else 7200.0
