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

from typing import Any

import orjson

from herald.consumers.channels.base import TRANSPORT_ERRORS, HttpSession, SendResult, error_detail
from herald.consumers.channels.tokens import (
    POLL_INTERVAL_S,
    REFRESH_MARGIN_S,
    SharedToken,
    TokenUnavailable,
    token_ttl_ms,
)
from herald.streams.keys import Keys
from herald.streams.settings import Settings

__all__ = ["POLL_INTERVAL_S", "REFRESH_MARGIN_S", "AccessTokens", "TokenUnavailable",
           "token_ttl_ms"]


class AccessTokens(SharedToken):
    """Get, cache and invalidate the app's access token (see the module doc)."""

    def __init__(self, redis: Any, settings: Settings, http: HttpSession) -> None:
        keys = Keys(settings.prefix)
        super().__init__(redis, keys.wechat_token(settings.wechat_appid),
                         keys.wechat_token_lock(settings.wechat_appid), settings.wechat_timeout_s)
        self._settings = settings
        self._http = http

    async def _fetch(self) -> tuple[str, float]:
        params = {
            "grant_type": "client_credential",
            "appid": self._settings.wechat_appid,
            "secret": self._settings.wechat_secret,
        }
        url = self._settings.wechat_base_url.rstrip("/") + "/cgi-bin/token"
        try:
            async with self._http.get().get(url, params=params) as response:
                status = response.status
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:  # the message never names the secret
            raise TokenUnavailable(
                SendResult.retry(f"access token fetch: {error_detail(exc)}")
            ) from exc
        return parse_token_answer(status, raw)


def parse_token_answer(status: int, raw: bytes) -> tuple[str, float]:
    """``(access_token, expires_in)`` of a WeChat/WeCom token answer; TokenUnavailable."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if status != 200 or not isinstance(document, dict):
        raise TokenUnavailable(SendResult.retry(f"access token fetch: HTTP {status}", code=status))
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
