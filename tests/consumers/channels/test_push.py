"""Push: FCM HTTP v1 (OAuth2 service-account JWT → token endpoint) and APNs (ES256
provider token over real HTTP/2) against fakes that verify both, and the push channel's
fan-out to a user's devices."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest

from herald.consumers.channels.apns import ApnsProvider, apns_id
from herald.consumers.channels.base import Device, Outcome, SendResult
from herald.consumers.channels.fcm import FcmProvider
from herald.consumers.channels.push import PushChannel, summarize
from herald.consumers.channels.registry import open_channel
from herald.provider_fakes import Fakes, Reply, fcm_error
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import provider_config
from tests.consumers.helpers.messages import message

ANDROID = Device(id="a" * 16, platform="fcm", token="fcm-token-" + "x" * 140)
IPHONE = Device(id="b" * 16, platform="apns", token="c0ffee" * 10 + "abcd")


def push(*devices: Device, **fields: Any) -> Any:
    msg = message("push", ",".join(d.id for d in devices), **fields)
    return dataclasses.replace(msg, devices=devices)


def one(device: Device, **fields: Any) -> Any:
    from herald.consumers.channels.push import device_message

    return device_message(push(device, **fields), device)


# ------------------------------------------------------------------ FCM


async def test_fcm_sends_with_an_oauth2_token_from_a_signed_assertion(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    fcm = FcmProvider(provider_config(channel_settings, fakes), redis)
    try:
        result = await fcm.send(one(ANDROID, priority="critical", variant={"title": "快递"}))
        assert result.outcome is Outcome.SENT and result.provider_id is not None
        assert result.provider_id.startswith("projects/herald-test/messages/")
        assert fakes.fcm.token_requests == 1  # the fake checked the RS256 assertion
        got = fakes.fcm.received[-1]
        assert got.verified and got.headers["authorization"].startswith("Bearer ya29.")
        sent = got.json()["message"]
        assert sent["token"] == ANDROID.token and sent["notification"]["title"] == "快递"
        assert sent["android"]["priority"] == "high"
        assert sent["data"]["order_id"] == "1024"  # FCM data values are strings
    finally:
        await fcm.aclose()


async def test_fcm_one_token_for_n_workers_refreshed_once_after_401(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    settings = provider_config(channel_settings, fakes)
    workers = [FcmProvider(settings, redis) for _ in range(5)]
    try:
        first = await asyncio.gather(*(workers[i % 5].send(one(ANDROID)) for i in range(20)))
        assert all(r.ok for r in first) and fakes.fcm.token_requests == 1
        fakes.fcm.expire_all()  # FCM answers 401 UNAUTHENTICATED to the old token
        again = await asyncio.gather(*(workers[i % 5].send(one(ANDROID)) for i in range(20)))
        assert all(r.ok for r in again) and fakes.fcm.token_requests == 2
    finally:
        for w in workers:
            await w.aclose()


async def test_fcm_errors_retry_fail_and_mark_stale_tokens(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    fcm = FcmProvider(provider_config(channel_settings, fakes), redis)
    fakes.fcm.script(
        dataclasses.replace(fcm_error(429, "QUOTA_EXCEEDED"), headers={"Retry-After": "30"}),
        fcm_error(404, "UNREGISTERED"),
        fcm_error(400, "INVALID_ARGUMENT"),
        fcm_error(503, "UNAVAILABLE"),
    )
    try:
        quota = await fcm.send(one(ANDROID))
        assert quota.outcome is Outcome.RETRY and quota.retry_after_s == 30.0
        assert quota.code == "QUOTA_EXCEEDED"
        gone = await fcm.send(one(ANDROID))
        assert gone.outcome is Outcome.FAILED and gone.stale == (ANDROID.id,)
        assert "[fcm UNREGISTERED]" in gone.detail
        bad = await fcm.send(one(ANDROID))
        assert bad.outcome is Outcome.FAILED and bad.stale == () and bad.code == "INVALID_ARGUMENT"
        assert (await fcm.send(one(ANDROID))).outcome is Outcome.RETRY
    finally:
        await fcm.aclose()


# ------------------------------------------------------------------ APNs


async def test_apns_sends_over_http2_with_an_es256_provider_token(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    apns = ApnsProvider(provider_config(channel_settings, fakes), redis)
    try:
        msg = one(IPHONE, priority="critical")
        result = await apns.send(msg)
        assert result.outcome is Outcome.SENT and result.provider_id == apns_id(
            msg.idempotency_key)
        got = fakes.apns.received[-1]
        assert got.verified and got.path == f"/3/device/{IPHONE.token}"
        assert got.headers["apns-topic"] == "com.example.herald"
        assert got.headers["apns-priority"] == "10" and got.headers["apns-push-type"] == "alert"
        payload = got.json()
        assert payload["aps"]["alert"]["title"] == msg.title
        assert payload["aps"]["interruption-level"] == "time-sensitive"
        again = await apns.send(msg)  # a retry carries the same apns-id
        assert again.provider_id == result.provider_id
    finally:
        await apns.aclose()


async def test_the_apns_client_speaks_http2(fakes: Fakes) -> None:
    async with httpx.AsyncClient(http1=False, http2=True, trust_env=False) as client:
        response = await client.post(f"{fakes.apns.url}/3/device/x", content=b"{}")
    assert response.http_version == "HTTP/2" and response.status_code == 403


async def test_apns_one_provider_token_for_n_workers_renewed_once_when_expired(
        channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    settings = provider_config(channel_settings, fakes)
    workers = [ApnsProvider(settings, redis) for _ in range(5)]
    try:
        first = await asyncio.gather(*(workers[i % 5].send(one(IPHONE)) for i in range(20)))
        assert all(r.ok for r in first)
        assert len(fakes.apns.tokens_seen) == 1 and sum(w.tokens.fetches for w in workers) == 1
        fakes.apns.expired |= fakes.apns.tokens_seen  # ExpiredProviderToken from now on
        await asyncio.sleep(1.1)  # a new token needs a new iat (whole seconds)
        again = await asyncio.gather(*(workers[i % 5].send(one(IPHONE)) for i in range(20)))
        assert all(r.ok for r in again)
        assert len(fakes.apns.tokens_seen) == 2 and sum(w.tokens.fetches for w in workers) == 2
    finally:
        for w in workers:
            await w.aclose()


async def test_apns_errors(channel_settings: Settings, fakes: Fakes, redis: Any) -> None:
    apns = ApnsProvider(provider_config(channel_settings, fakes), redis)
    fakes.apns.script(Reply(429, {"reason": "TooManyRequests"}, headers={"retry-after": "5"}),
                      Reply(400, {"reason": "BadDeviceToken"}),
                      Reply(413, {"reason": "PayloadTooLarge"}))
    fakes.apns.unregistered.add("dead" * 16)
    try:
        busy = await apns.send(one(IPHONE))
        assert busy.outcome is Outcome.RETRY and busy.retry_after_s == 5.0
        bad = await apns.send(one(IPHONE))
        assert bad.outcome is Outcome.FAILED and bad.stale == (IPHONE.id,)
        assert bad.code == "BadDeviceToken"
        big = await apns.send(one(IPHONE))
        assert big.outcome is Outcome.FAILED and big.stale == ()
        dead = dataclasses.replace(IPHONE, token="dead" * 16)
        gone = await apns.send(one(dead))
        assert gone.outcome is Outcome.FAILED and gone.stale == (dead.id,)
        assert "[apns Unregistered]" in gone.detail
    finally:
        await apns.aclose()


# ------------------------------------------------------------------ the channel


@pytest.mark.parametrize(("outcomes", "expected", "remaining"), [
    (("sent", "sent"), Outcome.SENT, None),
    (("sent", "retry"), Outcome.RETRY, ("b" * 16,)),
    (("failed", "sent"), Outcome.SENT, None),
    (("failed", "failed"), Outcome.FAILED, None),
    (("retry", "failed"), Outcome.RETRY, ("a" * 16,)),
])
def test_a_send_to_several_devices_sums_up(outcomes: tuple[str, str], expected: Outcome,
                                           remaining: tuple[str, ...] | None) -> None:
    made = {"sent": SendResult.sent("id"), "retry": SendResult.retry("busy", code=503),
            "failed": SendResult.failed("gone", code="Unregistered", stale=("x",))}
    result = summarize([(ANDROID, made[outcomes[0]]), (IPHONE, made[outcomes[1]])])
    assert result.outcome is expected and result.remaining == remaining
    assert result.stale == tuple("x" for o in outcomes if o == "failed")


async def test_the_push_channel_reaches_every_device(channel_settings: Settings,
                                                     fakes: Fakes, redis: Any) -> None:
    channel = open_channel("push", provider_config(channel_settings, fakes), redis)
    try:
        assert isinstance(channel, PushChannel) and channel.provider == "apns+fcm"
        result = await channel.send(push(ANDROID, IPHONE))
        assert result.outcome is Outcome.SENT and len(fakes.fcm.received) == 1
        assert len(fakes.apns.received) == 1
        assert (await channel.send(push())).outcome is Outcome.FAILED  # no device
    finally:
        await channel.aclose()


async def test_a_platform_that_is_not_enabled_fails(channel_settings: Settings, fakes: Fakes,
                                                    redis: Any) -> None:
    channel = open_channel("push", provider_config(channel_settings, fakes,
                                                   push_providers=("fcm",)), redis)
    try:
        result = await channel.send(push(IPHONE))
        assert result.outcome is Outcome.FAILED and "HERALD_PUSH_PROVIDERS" in result.detail
        assert fakes.apns.received == []
    finally:
        await channel.aclose()
