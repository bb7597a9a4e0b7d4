"""Rate limits: Celery-style specs and the Redis limiter shared by all workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.crc import key_slot

from herald.consumers.delivery.ratelimit import (
    RateLimit,
    RateLimiter,
    parse_rate,
    parse_rate_limits,
)
from herald.streams.connection import connect
from herald.streams.errors import SettingsError
from herald.streams.keys import Keys
from herald.streams.settings import Settings

TEN_PER_MINUTE = RateLimit(10, 60.0)


@pytest.mark.parametrize(
    ("spec", "limit", "period"),
    [
        ("10/m", 10, 60.0),
        ("100/s", 100, 1.0),
        ("1000/h", 1000, 3600.0),
        ("5", 5, 1.0),
        (" 7 / m ", 7, 60.0),
        ("10/d", 10, 86400.0),
    ],
)
def test_celery_specs(spec: str, limit: int, period: float) -> None:
    assert parse_rate(spec) == RateLimit(limit, period)


@pytest.mark.parametrize("spec", ["", "off", "10/w", "abc", "0/m", "1.5/s", "-3/s", "10/m/s"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(spec)


def test_settings_strings() -> None:
    assert parse_rate_limits("sms=10/m, wechat=100/s,webhook=2000/s,") == {
        "sms": RateLimit(10, 60.0),
        "wechat": RateLimit(100, 1.0),
        "webhook": RateLimit(2000, 1.0),
    }
    assert parse_rate_limits("") == {}
    for bad in ("sms", "sms=10/m,sms=5/m", "=10/m", "sms=fast"):
        with pytest.raises(SettingsError, match="HERALD_RATE_LIMITS"):
            parse_rate_limits(bad)


def test_from_settings_names_the_bad_variable(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="HERALD_USER_RATE_LIMITS"):
        RateLimiter.from_settings(None, settings.replace(user_rate_limits="sms=lots"))


def test_channel_and_user_buckets_share_one_slot() -> None:
    keys = Keys("herald")
    assert key_slot(keys.channel_rate("sms").encode()) == key_slot(
        keys.user_rate("sms", "用户-1").encode()
    )


@pytest.fixture
async def second_client(settings: Settings) -> AsyncIterator[Any]:
    client = connect(settings)
    try:
        yield client
    finally:
        await client.aclose()


async def test_two_workers_at_10_per_minute_get_10_and_are_told_when_to_retry(
    redis: Any, second_client: Any, settings: Settings
) -> None:
    keys = Keys(settings.prefix)
    workers = [
        RateLimiter(client, keys, {"sms": TEN_PER_MINUTE}) for client in (redis, second_client)
    ]
    started = time.monotonic()
    decisions = await asyncio.gather(*(w.acquire("sms") for w in workers for _ in range(15)))
    allowed = [d for d in decisions if d.allowed]
    refused = [d for d in decisions if not d.allowed]
    assert len(allowed) == 10 and len(refused) == 20
    elapsed = time.monotonic() - started
    for decision in refused:  # the window frees up 60 s after the first grant
        assert 60.0 - elapsed - 0.5 <= decision.retry_after_s <= 60.0
    later = await workers[1].acquire("sms")
    assert not later.allowed and later.retry_after_s > 55.0
    assert await redis.zcard(keys.channel_rate("sms")) == 10  # refusals recorded nothing


async def test_a_backlog_drains_at_the_limit_and_nothing_is_lost(
    redis: Any, second_client: Any, settings: Settings
) -> None:
    limit = RateLimit(5, 0.4)
    keys = Keys(settings.prefix)
    backlog = asyncio.Queue[int]()
    for item in range(20):
        backlog.put_nowait(item)
    sent: list[tuple[int, int]] = []  # (item, Redis server time of the grant)

    async def worker(client: Any) -> None:
        limiter = RateLimiter(client, keys, {"sms": limit})
        while not backlog.empty():
            item = backlog.get_nowait()
            decision = await limiter.wait("sms", max_wait_s=5.0)
            assert decision.allowed
            sent.append((item, decision.now_ms))

    tasks = [worker(c) for c in (redis, second_client) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)
    assert sorted(item for item, _ in sent) == list(range(20))
    times = sorted(ms for _, ms in sent)
    for i, start in enumerate(times):  # any 400 ms window holds at most 5 grants
        assert sum(1 for t in times[i:] if t < start + limit.window_ms) <= limit.limit
    assert times[-1] - times[0] >= 3 * limit.window_ms  # 20 grants need >= 4 windows


async def test_user_throttle_is_per_user_and_all_or_nothing(redis: Any, settings: Settings) -> None:
    keys = Keys(settings.prefix)
    limiter = RateLimiter(
        redis,
        keys,
        {"sms": RateLimit(3, 60.0)},
        {"sms": RateLimit(2, 60.0), "*": RateLimit(1, 60.0)},
    )
    assert [(await limiter.acquire("sms", "alice")).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    # alice's refusal took nothing from the channel: bob still gets the last send
    assert await redis.zcard(keys.channel_rate("sms")) == 2
    assert (await limiter.acquire("sms", "bob")).allowed
    channel_full = await limiter.acquire("sms", "carol")
    assert not channel_full.allowed and channel_full.retry_after_s > 59
    assert await redis.zcard(keys.user_rate("sms", "carol")) == 0  # nothing taken from carol
    # "*" applies to channels without their own entry; no channel limit for email
    assert [(await limiter.acquire("email", "alice")).allowed for _ in range(2)] == [True, False]


async def test_no_limit_means_no_redis_and_oversized_counts_are_refused(
    redis: Any, settings: Settings
) -> None:
    limiter = RateLimiter(redis, Keys(settings.prefix), {"sms": TEN_PER_MINUTE})
    free = await limiter.acquire("webhook", "alice")
    assert free.allowed and free.now_ms == 0
    assert (await limiter.acquire("sms", count=10)).allowed
    with pytest.raises(ValueError, match="never be granted"):
        await limiter.acquire("sms", count=11)


async def test_wait_gives_up_after_max_wait(redis: Any, settings: Settings) -> None:
    limiter = RateLimiter(redis, Keys(settings.prefix), {"sms": RateLimit(1, 60.0)})
    assert (await limiter.wait("sms")).allowed
    started = time.monotonic()
    refused = await limiter.wait("sms", max_wait_s=0.2)
    assert not refused.allowed and refused.retry_after_s > 59
    assert time.monotonic() - started < 0.5


async def test_the_window_slides(redis: Any, settings: Settings) -> None:
    limiter = RateLimiter(redis, Keys(settings.prefix), {"sms": RateLimit(2, 1.0)})
    first = await limiter.acquire("sms")
    await asyncio.sleep(0.3)
    second = await limiter.acquire("sms")
    assert first.allowed and second.allowed
    refused = await limiter.acquire("sms")
    assert not refused.allowed
    # room again exactly when the first grant leaves the window (server clock)
    assert refused.retry_after_s == (first.now_ms + 1000 - refused.now_ms) / 1000
    await asyncio.sleep(refused.retry_after_s + 0.01)
    assert (await limiter.acquire("sms")).allowed  # the first grant left the window
    if (await redis.time())[0] * 1000 < second.now_ms + 900:  # not starved by a slow host
        assert not (await limiter.acquire("sms")).allowed  # the second is still in it
