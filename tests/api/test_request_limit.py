"""Request rate limits: token buckets in Redis, per key and per user, shared by processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.api.auth import Principal
from herald.api.errors import TooManyRequests
from herald.api.request_limit import Bucket, RequestLimiter
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.api.conftest import OTHER_KEY, running_api


def test_bucket_shapes() -> None:
    assert Bucket.from_rate("10/m") == Bucket(capacity=10, per_ms=10 / 60_000)
    assert Bucket.from_rate("off") is None
    with pytest.raises(ValueError):
        Bucket.from_rate("ten per minute")


async def test_bucket_spends_then_refills(settings: Settings, redis: Any) -> None:
    limiter = RequestLimiter(redis, settings.replace(api_rate_key="5/s"))
    key = Principal("service", "k1")
    decisions = [await limiter.take(key) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert 0 < decisions[-1].retry_after_s <= 0.2 + 0.01
    await asyncio.sleep(0.45)  # 5/s refills about two tokens
    assert (await limiter.take(key)).allowed
    assert (await limiter.take(Principal("service", "k2"))).allowed  # buckets are per key


async def test_buckets_are_shared_between_limiters(settings: Settings, redis: Any) -> None:
    """Two API processes (two limiters on the same Redis) spend from one bucket."""
    shaped = settings.replace(api_rate_user="4/m")
    first, second = RequestLimiter(redis, shaped), RequestLimiter(redis, shaped)
    alice = Principal("user", "alice")
    allowed = [(await (first if i % 2 else second).take(alice)).allowed for i in range(6)]
    assert allowed == [True] * 4 + [False] * 2
    with pytest.raises(TooManyRequests) as caught:
        await first.check(alice)
    assert caught.value.retry_after is not None and 10 <= caught.value.retry_after <= 15
    assert (await first.take(Principal("user", "bob"))).allowed


async def test_off_means_unlimited(settings: Settings, redis: Any) -> None:
    limiter = RequestLimiter(redis, settings.replace(api_rate_user="off"))
    assert all([(await limiter.take(Principal("user", "u"))).allowed for _ in range(50)])


async def test_http_429_with_retry_after(api_settings: Settings) -> None:
    settings = api_settings.replace(api_rate_key="3/m", api_rate_user="2/m")
    async with running_api(settings) as api:
        statuses = [(await api.get("/v1/users/alice/unread_count")).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await api.get("/v1/users/alice/unread_count")
        assert limited.content_type == "application/problem+json"
        assert 15 <= int(limited.headers["Retry-After"]) <= 21
        assert limited.body["retry_after"] == int(limited.headers["Retry-After"])
        assert (await api.get("/v1/users/alice/unread_count", auth=OTHER_KEY)).status == 200
        token = api.token("alice")
        user_statuses = [(await api.get("/v1/users/me/unread_count", auth=token)).status
                         for _ in range(3)]
        assert user_statuses == [200, 200, 429]
        assert (await api.get("/healthz", auth=None)).status == 200  # public routes: no limit
        metrics = (await api.get("/metrics", auth=None)).raw.decode()
        assert 'herald_rate_limited_requests_total{scope="key"} 2.0' in metrics
        assert 'herald_rate_limited_requests_total{scope="user"} 1.0' in metrics


async def test_unauthenticated_requests_spend_nothing(api_settings: Settings) -> None:
    async with running_api(api_settings.replace(api_rate_key="2/m")) as api:
        for _ in range(3):
            assert (await api.get("/v1/users/alice/unread_count", auth="bad")).status == 401
        statuses = [(await api.get("/v1/users/alice/unread_count")).status for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_leases_never_admit_more_than_the_bucket(settings: Settings, redis: Any) -> None:
    """Processes lease tokens in chunks; together they stay within the shared bucket."""
    shaped = settings.replace(api_rate_key="100/m")
    assert Bucket.from_rate("100/m").lease == 4  # type: ignore[union-attr]
    limiters = [RequestLimiter(redis, shaped), RequestLimiter(redis, shaped)]
    key = Principal("service", "busy")
    allowed = sum([(await limiters[i % 2].take(key)).allowed for i in range(150)])
    assert 90 <= allowed <= 101  # at most one lapsed chunk per process; ~1 token of refill
    left = await redis.hget(Keys(shaped.prefix).api_key_rate("busy"), "tokens")
    assert float(left) < 5
