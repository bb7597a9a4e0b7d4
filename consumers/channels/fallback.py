"""Provider fallback: a channel over an ordered list of providers with shared breakers.

``HERALD_SMS_PROVIDERS=aliyun,tencent`` makes the SMS channel a :class:`FallbackChannel`:
a send goes to the first provider whose circuit is closed. A provider's retryable
failures that say it refused the message — throttling, an outage (HTTP 429/5xx, a
provider's own busy code: a result with a ``code``), or a connection that never opened —
are counted in a breaker shared by every worker (``Keys.provider_breaker``, one Lua
step: lua/breaker_fail.lua); ``HERALD_BREAKER_FAILURES`` of them within
``HERALD_BREAKER_WINDOW`` open it for ``HERALD_BREAKER_OPEN``, and while it is open the
channel moves to the next provider at once (the message is tried there in the same
send). When every circuit is open the last provider is tried anyway.

Never twice through two providers: a send whose outcome is unknown — the request left
and no answer came (a timeout, a connection lost mid-answer: a retryable result without
a code that is not a refused connection) — pins the message to that provider
(``Keys.provider_pin``, for :data:`PIN_MS`); every later attempt of it goes to that
provider with the same idempotency key, whatever its breaker says. A message the
provider accepted is never sent again (the delivery path records it sent). Which
provider took a send is in its result's detail, so the delivery events
(``delivery.succeeded``/``failed``) record it in the log.

Failure modes: a Redis error while reading the pin or the breaker fails the send as
``retry`` (nothing was sent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from herald.consumers.channels.base import MAX_DETAIL_CHARS, OutboundMessage, Provider, SendResult
from herald.streams.connection import REDIS_ERRORS, text
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.scripts import register
from herald.streams.settings import Settings

PIN_MS = 86_400_000  # longer than any retry schedule of one message
_REFUSED = ("ClientConnectorError", "ConnectionRefusedError", "ClientConnectorDNSError")

log = get_logger(__name__)


def outcome_unknown(result: SendResult) -> bool:
    """A retryable result after which the provider may have accepted the message."""
    return result.retryable and result.code is None and not result.detail.startswith(_REFUSED)


class FallbackChannel:
    """One channel over ``providers`` in order (module doc)."""

    def __init__(self, name: str, providers: Sequence[Provider], settings: Settings,
                 redis: Any) -> None:
        self.name = name
        self.providers = list(providers)
        self.provider = "+".join(p.provider for p in self.providers)
        self.contact = self.providers[0].contact
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.window_ms = int(settings.breaker_window_s * 1000)
        self.threshold = settings.breaker_failures
        self.open_ms = int(settings.breaker_open_s * 1000)
        self._fail = register(redis, __file__, "breaker_fail")
        self._by_name = {p.provider: p for p in self.providers}

    async def send(self, message: OutboundMessage) -> SendResult:
        pin_key = self.keys.provider_pin(self.name, message.idempotency_key)
        now = int(time.time() * 1000)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(pin_key)
                for p in self.providers:
                    pipe.hget(self.keys.provider_breaker(self.name, p.provider), "open_until")
                pinned, *opens = await pipe.execute()
        except REDIS_ERRORS as exc:
            return SendResult.retry(f"provider state unreadable: {exc}")
        if pinned is not None and text(pinned) in self._by_name:
            provider = self._by_name[text(pinned)]
            return self._named(provider, await provider.send(message), "pinned: its last "
                               "outcome was unknown")
        closed = [p for p, until in zip(self.providers, opens, strict=True)
                  if until is None or int(text(until)) <= now]
        order = closed or self.providers[-1:]
        moved: list[str] = []
        result = SendResult.retry("no provider")
        for provider in order:
            result = await provider.send(message)
            if outcome_unknown(result):
                await self._pin(pin_key, provider)
                return self._named(provider, result, "outcome unknown: pinned")
            if not result.retryable:
                return self._named(provider, result, _after(moved))
            opened = await self._failed(provider)
            if not opened:
                return self._named(provider, result, _after(moved))
            moved.append(provider.provider)
        return self._named(order[-1], result, _after(moved))

    async def _pin(self, key: str, provider: Provider) -> None:
        try:
            await self.redis.set(key, provider.provider, px=PIN_MS)
        except REDIS_ERRORS as exc:  # the retry may then go elsewhere: say so
            log.error("provider_pin_failed", channel=self.name, provider=provider.provider,
                      error=str(exc))

    async def _failed(self, provider: Provider) -> bool:
        """Count a refusal; True when it opened the provider's circuit."""
        try:
            until = await self._fail(
                keys=[self.keys.provider_breaker(self.name, provider.provider)],
                args=[int(time.time() * 1000), self.window_ms, self.threshold, self.open_ms])
        except REDIS_ERRORS:
            return False
        if int(until):
            log.warning("provider_circuit_opened", channel=self.name,
                        provider=provider.provider, open_until=int(until))
            return True
        return False

    @staticmethod
    def _named(provider: Provider, result: SendResult, note: str) -> SendResult:
        words = f"via {provider.provider}" + (f" ({note})" if note else "")
        detail = f"{result.detail} [{words}]" if result.detail else f"[{words}]"
        return SendResult(outcome=result.outcome, provider_id=result.provider_id,
                          code=result.code, detail=detail[:MAX_DETAIL_CHARS],
                          retry_after_s=result.retry_after_s, stale=result.stale,
                          remaining=result.remaining)

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()


def _after(moved: list[str]) -> str:
    return f"circuit open: {', '.join(moved)}" if moved else ""
