"""Provider fallback (HERALD_SMS_PROVIDERS=aliyun,tencent) against the local fakes of both
providers: throttling or an outage opens a breaker shared by every worker and moves
sends to the second provider; an unknown outcome (a timeout after the request left)
pins the message to its provider, retried there with its idempotency key, never sent
through the other one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.consumers.channels.base import Outcome
from herald.consumers.channels.fallback import FallbackChannel
from herald.consumers.channels.registry import open_channel
from herald.provider_fakes import Fakes, Reply
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import provider_config
from tests.consumers.helpers.messages import message

PHONE = "+8613800138000"
BUSY = Reply(status=503, json={"Code": "ServiceUnavailable", "Message": "busy"})


def two_ids(n: int) -> str:
    return f"01HZX3J4K5M6N7P8Q9R0S1T2{n:02d}"


@pytest.fixture
def fallback_settings(channel_settings: Settings, fakes: Fakes) -> Settings:
    return provider_config(channel_settings, fakes, sms_providers=("aliyun", "tencent"),
                           breaker_failures=3, breaker_window_s=30.0, breaker_open_s=60.0,
                           sms_timeout_s=0.5)


@pytest.fixture
async def workers(fallback_settings: Settings, redis: Any) -> AsyncIterator[list[Any]]:
    """Two workers' SMS channels (one breaker between them, in Redis)."""
    channels = [open_channel("sms", fallback_settings, redis) for _ in range(2)]
    try:
        yield channels
    finally:
        for channel in channels:
            await channel.aclose()


async def test_an_outage_opens_the_shared_breaker_and_moves_sends(
        workers: list[Any], fakes: Fakes, fallback_settings: Settings, redis: Any) -> None:
    a, b = workers
    assert isinstance(a, FallbackChannel) and a.provider == "aliyun+tencent"
    fakes.aliyun.script(BUSY, BUSY, BUSY)
    first = await a.send(message("sms", PHONE, notification_id=two_ids(1)))
    assert first.outcome is Outcome.RETRY and "via aliyun" in first.detail
    second = await b.send(message("sms", PHONE, notification_id=two_ids(2)))
    assert second.outcome is Outcome.RETRY  # two failures: still closed
    # the third (another worker's count, shared) opens it: the send moves on at once
    third = await a.send(message("sms", PHONE, notification_id=two_ids(3)))
    assert third.ok and "via tencent (circuit open: aliyun)" in third.detail
    # while it is open, every worker goes straight to tencent
    fourth = await b.send(message("sms", PHONE, notification_id=two_ids(4)))
    assert fourth.ok and "via tencent" in fourth.detail
    assert len(fakes.aliyun.received) == 3 and len(fakes.tencent.received) == 2
    breaker = await redis.hgetall(Keys(fallback_settings.prefix).provider_breaker("sms",
                                                                                  "aliyun"))
    assert int(breaker[b"open_until"]) > 0


async def test_an_unknown_outcome_is_retried_on_the_same_provider_only(
        workers: list[Any], fakes: Fakes) -> None:
    a, b = workers
    fakes.aliyun.script(Reply(delay_s=2.0))  # answers after the 0.5 s timeout: sent or not?
    sms = message("sms", PHONE, notification_id=two_ids(9))
    first = await a.send(sms)
    assert first.outcome is Outcome.RETRY and "outcome unknown" in first.detail
    # aliyun then refuses everything: the breaker opens for other messages …
    fakes.aliyun.script(BUSY, BUSY, BUSY, BUSY)
    for n in range(3):
        await b.send(message("sms", PHONE, notification_id=two_ids(20 + n)))
    # … but the pinned message is retried on aliyun, with the same idempotency key
    again = await b.send(message("sms", PHONE, notification_id=two_ids(9), attempt=2))
    assert "via aliyun (pinned" in again.detail
    to_aliyun = [r.query.get("OutId") for r in fakes.aliyun.received]
    assert to_aliyun.count(sms.idempotency_key) == 2
    assert all(sms.idempotency_key not in r.body.decode(errors="replace")
               for r in fakes.tencent.received)


async def test_a_permanent_refusal_does_not_fall_back(workers: list[Any], fakes: Fakes) -> None:
    a, _ = workers
    fakes.aliyun.script(Reply(json={"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad"}))
    result = await a.send(message("sms", PHONE, notification_id=two_ids(30)))
    assert result.outcome is Outcome.FAILED and "via aliyun" in result.detail
    assert fakes.tencent.received == []
