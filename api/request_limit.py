"""Request rate limits: one token bucket per API key and per user, kept in Redis.

Buckets live in Redis (``api/lua/request_limit_take.lua``, one atomic step with the
server's clock), so every API process shares them. A service key spends from its
key's bucket (``HERALD_API_RATE_KEY``); a user token from its user's bucket
(``HERALD_API_RATE_USER``). A rate ``N/period`` allows bursts of N and refills N
per period; ``off`` disables the limit.

Leases: to keep Redis off the hot path, a process takes up to ``capacity / 20``
tokens at once (at most ``MAX_LEASE``) and spends them locally for ``LEASE_S``;
what is unspent then lapses. Tokens leave the shared bucket before they are
spent, so all processes together never admit more than the bucket allows; they
may admit a little less (a lapsed lease). Small buckets (under 40 tokens) lease
nothing and are exact.

Failure modes: :class:`TooManyRequests` (429) with ``Retry-After`` when the bucket
is empty; Redis errors propagate (the problem middleware answers 503).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from herald.api.auth import Principal
from herald.api.errors import TooManyRequests
from herald.streams import tenants
from herald.streams.keys import Keys
from herald.streams.scripts import register
from herald.streams.settings import Settings, parse_rate

LEASE_S = 1.0
MAX_LEASE = 100
MAX_LEASES = 100_000  # local leases kept at most (one per busy key or user)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket's shape: ``capacity`` tokens, refilled at ``per_ms`` tokens a millisecond."""

    capacity: float
    per_ms: float

    @classmethod
    def from_rate(cls, text: str) -> Bucket | None:
        rate = parse_rate(text)
        if rate is None:
            return None
        count, period_s = rate
        return cls(capacity=count, per_ms=count / (period_s * 1000.0))

    @property
    def lease(self) -> int:
        """Extra tokens taken per Redis call, to spend locally."""
        return max(0, min(int(self.capacity // 20) - 1, MAX_LEASE))


@dataclass(frozen=True, slots=True)
class Allowance:
    allowed: bool
    retry_after_s: float
    remaining: int


@dataclass(slots=True)
class _Lease:
    tokens: int
    expires: float


class RequestLimiter:
    """Checks and spends a principal's tokens; one instance per app."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self._keys = Keys(settings.prefix)
        self._take = register(redis, __file__, "request_limit_take")
        self._key_bucket = Bucket.from_rate(settings.api_rate_key)
        self._user_bucket = Bucket.from_rate(settings.api_rate_user)
        self._tenant_buckets = {t: Bucket.from_rate(rate) for t, rate in settings.tenant_rates}
        self._leases: dict[str, _Lease] = {}

    def _bucket_for(self, principal: Principal) -> tuple[str, str, Bucket | None]:
        if principal.is_service:
            return "key", self._keys.api_key_rate(principal.subject), self._key_bucket
        user = tenants.scoped(principal.tenant, principal.subject)
        return "user", self._keys.api_user_rate(user), self._user_bucket

    def _tenant_bucket(self, principal: Principal) -> tuple[str, Bucket | None]:
        """The tenant's shared bucket (HERALD_TENANT_RATES), if it has one."""
        name = principal.tenant or "-"
        bucket = self._tenant_buckets.get(name, self._tenant_buckets.get("*"))
        return self._keys.rate_bucket("api_tenant", name), bucket

    async def take(self, principal: Principal, cost: int = 1) -> Allowance:
        """Spend ``cost`` tokens of the principal's bucket; never raises for an empty one."""
        _scope, key, bucket = self._bucket_for(principal)
        return await self._spend(key, bucket, cost)

    async def _spend(self, key: str, bucket: Bucket | None, cost: int) -> Allowance:
        if bucket is None:
            return Allowance(True, 0.0, -1)
        now = time.monotonic()
        lease = self._leases.get(key)
        if lease is not None and lease.expires > now and lease.tokens >= cost:
            lease.tokens -= cost
            return Allowance(True, 0.0, lease.tokens)
        granted, retry_ms, left = await self._take(
            keys=[key], args=[bucket.capacity, repr(bucket.per_ms), cost, cost + bucket.lease]
        )
        granted = int(granted)
        if granted < cost:
            return Allowance(False, int(retry_ms) / 1000.0, int(left))
        if granted > cost:
            self._keep(key, granted - cost, now)
        return Allowance(True, 0.0, int(left))

    def _keep(self, key: str, tokens: int, now: float) -> None:
        lease = self._leases.get(key)
        if lease is not None and lease.expires > now:
            lease.tokens += tokens  # a concurrent request leased too: keep both
            return
        if len(self._leases) >= MAX_LEASES:
            self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
            if len(self._leases) >= MAX_LEASES:
                self._leases.clear()  # lapsing leases early only admits less
        self._leases[key] = _Lease(tokens, now + LEASE_S)

    async def check(self, principal: Principal, cost: int = 1) -> str | None:
        """Spend tokens or raise TooManyRequests; returns the scope spent from (or None).

        The tenant's bucket (HERALD_TENANT_RATES) is spent first, then the key's or
        the user's."""
        tenant_key, tenant_bucket = self._tenant_bucket(principal)
        if tenant_bucket is not None:
            shared = await self._spend(tenant_key, tenant_bucket, cost)
            if not shared.allowed:
                raise TooManyRequests(
                    f"request rate limit of this tenant reached; retry in "
                    f"{shared.retry_after_s:.1f}s", retry_after=shared.retry_after_s)
        scope, _key, bucket = self._bucket_for(principal)
        if bucket is None:
            return None
        decision = await self.take(principal, cost)
        if not decision.allowed:
            who = "this API key" if scope == "key" else "this user"
            raise TooManyRequests(
                f"request rate limit of {who} reached; retry in {decision.retry_after_s:.1f}s",
                retry_after=decision.retry_after_s,
            )
        return scope
