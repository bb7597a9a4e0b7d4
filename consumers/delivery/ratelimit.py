"""Rate limits shared by every worker: per channel, plus a per-user throttle.

Specs are Celery's: ``"10/m"``, ``"100/s"``, ``"1000/h"``, or a bare number
meaning per second. HERALD_RATE_LIMITS maps channels to specs
(``"sms=10/m,wechat=100/s,webhook=2000/s"``); HERALD_USER_RATE_LIMITS does the
same per (user, channel); in both, ``*`` is the default for channels not named.

Guarantee: in any window of the spec's length (by Redis server time), at most
``limit`` sends are granted per bucket, however many workers and processes ask —
the check and the grant are one Lua step (``lua/ratelimit_acquire.lua``, an
exact sliding-window log) over the channel bucket and the user's bucket
together (same hash tag), so a send refused by one bucket uses none of the
other. A refused send is never dropped: the caller is told when to ask again
(:attr:`Permit.retry_after_s`) and may :meth:`RateLimiter.wait`.

Critical sends (priority ``critical``) go first without breaking the limit: a share
of each channel's limit (HERALD_CRITICAL_RESERVE, default 10 %, at least one send
when the limit is 2 or more, never all of it) is kept for them. A bulk send is
granted while the channel's window holds fewer than ``limit - reserve`` grants, a
critical one while it holds fewer than ``limit``; both count in the same window, so
the limit holds for their sum, and whenever a slot is free for bulk it is free for a
critical send too. A critical send therefore never waits behind bulk ones, and waits
at all only when critical sends alone used the reserve up.

Memory is one sorted-set member per grant in the window (``limit`` at most),
so very large limits (say 100,000/s) cost accordingly. Redis errors propagate.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herald.streams.errors import SettingsError
from herald.streams.keys import Keys
from herald.streams.scripts import register
from herald.streams.settings import Settings
from herald.streams.settings import parse_rate as settings_rate

DEFAULT_KEY = "*"
# Spread for waiters woken by the same retry time, so they do not all collide.
WAKE_JITTER_S = 0.01


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` sends in any window of ``period_s`` seconds."""

    limit: int
    period_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period_s <= 0:
            raise ValueError(f"a rate limit needs limit >= 1 and period > 0, got {self}")

    @property
    def window_ms(self) -> int:
        return max(round(self.period_s * 1000), 1)

    def reserved(self, share: float) -> int:
        """Sends per window kept for critical sends (see the module doc)."""
        if share <= 0 or self.limit < 2:
            return 0
        return min(self.limit - 1, max(1, int(self.limit * share)))

    def for_bulk(self, share: float) -> RateLimit:
        """The limit a non-critical send sees."""
        return RateLimit(self.limit - self.reserved(share), self.period_s)


def parse_rate(text: str) -> RateLimit:
    """``"10/m"`` → RateLimit(10, 60.0) (streams.settings.parse_rate's syntax, a whole
    number of sends); raises ValueError on anything else, ``off`` included."""
    parsed = settings_rate(text)
    if parsed is None or parsed[0] != int(parsed[0]):
        raise ValueError(f"not a rate limit: {text!r} (a whole number of sends, e.g. 10/m)")
    return RateLimit(int(parsed[0]), parsed[1])


def parse_rate_limits(text: str, variable: str = "HERALD_RATE_LIMITS") -> dict[str, RateLimit]:
    """``"sms=10/m,wechat=100/s"`` → {name: RateLimit}; SettingsError names ``variable``."""
    limits: dict[str, RateLimit] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, spec = part.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError(f"expected name=spec, got {part.strip()!r}")
            if name in limits:
                raise ValueError(f"{name!r} is given twice")
            limits[name] = parse_rate(spec)
        except ValueError as exc:
            raise SettingsError(f"{variable}={text!r} is invalid: {exc}") from exc
    return limits


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer to one acquire: allowed now, or ask again after ``retry_after_s``.

    ``now_ms`` is the Redis server time the decision was taken at (0 when no
    limit applied and Redis was not asked).
    """

    allowed: bool
    retry_after_s: float = 0.0
    now_ms: int = 0


class RateLimiter:
    """Channel and per-user limits in Redis; one instance per process is enough."""

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        channel_limits: Mapping[str, RateLimit],
        user_limits: Mapping[str, RateLimit] | None = None,
        reserve: float = 0.0,
    ) -> None:
        self._keys = keys
        self._channel_limits = dict(channel_limits)
        self._user_limits = dict(user_limits or {})
        self.reserve = reserve  # the share of channel limits kept for critical sends
        self._script = register(redis, __file__, "ratelimit_acquire")

    @classmethod
    def from_settings(cls, redis: Any, settings: Settings) -> RateLimiter:
        """Limits from HERALD_RATE_LIMITS and HERALD_USER_RATE_LIMITS (SettingsError)."""
        return cls(
            redis,
            Keys(settings.prefix),
            parse_rate_limits(settings.rate_limits, "HERALD_RATE_LIMITS"),
            parse_rate_limits(settings.user_rate_limits, "HERALD_USER_RATE_LIMITS"),
            settings.critical_reserve,
        )

    def buckets(self, channel: str, user: str | None = None, *, critical: bool = False
                ) -> list[tuple[str, RateLimit]]:
        """The (key, limit) pairs that apply to one send on ``channel`` to ``user``
        (a bulk send sees the channel's limit less the critical reserve)."""
        found: list[tuple[str, RateLimit]] = []
        channel_limit = self._channel_limits.get(channel) or self._channel_limits.get(DEFAULT_KEY)
        if channel_limit is not None:
            limit = channel_limit if critical else channel_limit.for_bulk(self.reserve)
            found.append((self._keys.channel_rate(channel), limit))
        if user is not None:
            user_limit = self._user_limits.get(channel) or self._user_limits.get(DEFAULT_KEY)
            if user_limit is not None:
                found.append((self._keys.user_rate(channel, user), user_limit))
        return found

    async def acquire(self, channel: str, user: str | None = None, count: int = 1, *,
                      critical: bool = False) -> Permit:
        """Take ``count`` sends now from every applicable bucket, or learn when to retry.

        Raises ValueError when ``count`` exceeds a bucket's limit (never grantable).
        """
        buckets = self.buckets(channel, user, critical=critical)
        if not buckets:
            return Permit(allowed=True)
        if count < 1 or any(count > limit.limit for _, limit in buckets):
            raise ValueError(f"count {count} can never be granted on {channel}")
        args: list[Any] = [secrets.token_hex(8), count]
        for _, limit in buckets:
            args += [limit.limit, limit.window_ms]
        allowed, wait_ms, now_ms = await self._script(keys=[k for k, _ in buckets], args=args)
        return Permit(
            allowed=bool(allowed), retry_after_s=int(wait_ms) / 1000, now_ms=int(now_ms)
        )

    async def wait(
        self, channel: str, user: str | None = None, *, max_wait_s: float | None = None
    ) -> Permit:
        """Acquire, sleeping as told between tries; the last refusal after ``max_wait_s``.

        Without ``max_wait_s`` it waits as long as it takes (a send is delayed,
        never dropped); cancel the task to give up.
        """
        deadline = None if max_wait_s is None else time.monotonic() + max_wait_s
        while True:
            decision = await self.acquire(channel, user)
            if decision.allowed:
                return decision
            pause = decision.retry_after_s + random.uniform(0, WAKE_JITTER_S)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or pause > left:
                    return decision
            await asyncio.sleep(pause)
