"""SMS channel against a Twilio-shaped Messages API on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from herald.consumers.channels.base import Outcome
from herald.consumers.channels.sms import MAX_BODY_CHARS, SmsChannel, sms_text
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import SHORT_TIMEOUT_S, FakeTwilio, Reply
from tests.consumers.helpers.messages import CHINESE_BODY, CHINESE_TITLE, message

PHONE = "+8613800138000"


def configured(settings: Settings, twilio: FakeTwilio, **changes: object) -> Settings:
    values: dict[str, object] = {
        "sms_base_url": twilio.url + "/",
        "sms_account_sid": twilio.sid,
        "sms_auth_token": twilio.token,
        "sms_from": twilio.sender,
    }
    values.update(changes)
    return settings.replace(**values)


@pytest.fixture
async def channel(channel_settings: Settings, twilio: FakeTwilio) -> AsyncIterator[SmsChannel]:
    sms = SmsChannel(configured(channel_settings, twilio))
    try:
        yield sms
    finally:
        await sms.aclose()


async def test_success_posts_the_form_with_auth_and_idempotency_key(
    channel: SmsChannel, twilio: FakeTwilio
) -> None:
    msg = message("sms", PHONE)
    result = await channel.send(msg)
    assert result.outcome is Outcome.SENT and result.code == 201
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    (got,) = twilio.received
    assert got.form == {
        "To": PHONE,
        "From": twilio.sender,
        "Body": f"{CHINESE_TITLE}\n{CHINESE_BODY}",
    }
    assert got.headers["i-twilio-idempotency-token"] == msg.idempotency_key
    assert got.headers["content-type"].startswith("application/x-www-form-urlencoded")


async def test_messaging_service_sid_replaces_from(
    channel_settings: Settings, twilio: FakeTwilio
) -> None:
    sms = SmsChannel(configured(channel_settings, twilio, sms_from="MG" + "1" * 32))
    try:
        assert (await sms.send(message("sms", PHONE))).ok
    finally:
        await sms.aclose()
    form = twilio.received[0].form
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form


async def test_twilio_json_error_is_permanent_with_its_code(
    channel: SmsChannel, twilio: FakeTwilio
) -> None:
    error = {
        "code": 21211,
        "message": "The 'To' number +8610 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    twilio.script(Reply(400, error))
    result = await channel.send(message("sms", PHONE))
    assert result.outcome is Outcome.FAILED
    assert result.code == 21211
    assert "not a valid phone number" in result.detail and "twilio 21211" in result.detail


async def test_bad_credentials_fail_permanently(
    channel_settings: Settings, twilio: FakeTwilio
) -> None:
    sms = SmsChannel(configured(channel_settings, twilio, sms_auth_token="wrong"))
    try:
        result = await sms.send(message("sms", PHONE))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.FAILED and result.code == 20003


async def test_500_is_retryable_and_the_retry_reuses_the_key(
    channel: SmsChannel, twilio: FakeTwilio
) -> None:
    twilio.script(Reply(500, {"code": 20500, "message": "Internal Server Error", "status": 500}))
    first = await channel.send(message("sms", PHONE, attempt=1))
    second = await channel.send(message("sms", PHONE, attempt=2))
    assert first.outcome is Outcome.RETRY and first.code == 20500
    assert second.ok
    keys = {got.headers["i-twilio-idempotency-token"] for got in twilio.received}
    assert len(keys) == 1 and len(twilio.received) == 2


async def test_429_with_retry_after_and_no_json(channel: SmsChannel, twilio: FakeTwilio) -> None:
    twilio.script(Reply(429, headers={"Retry-After": "30"}))
    result = await channel.send(message("sms", PHONE))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after_s == 30.0 and result.code == 429


async def test_timeout_is_retryable(channel_settings: Settings, twilio: FakeTwilio) -> None:
    twilio.script(Reply(201, {"sid": "SMlate"}, delay_s=5.0))
    sms = SmsChannel(configured(channel_settings, twilio, sms_timeout_s=SHORT_TIMEOUT_S))
    started = time.monotonic()
    try:
        result = await sms.send(message("sms", PHONE))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.RETRY and "timed out" in result.detail
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("phone", ["13800138000", "+0123456789", "+86 138 0013 8000", ""])
async def test_non_e164_numbers_fail_without_a_request(
    channel: SmsChannel, twilio: FakeTwilio, phone: str
) -> None:
    result = await channel.send(message("sms", phone))
    assert result.outcome is Outcome.FAILED and "E.164" in result.detail
    assert twilio.received == []


async def test_unconfigured_sms_fails_clearly(channel_settings: Settings) -> None:
    sms = SmsChannel(channel_settings)
    try:
        result = await sms.send(message("sms", PHONE))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.FAILED and "HERALD_SMS_ACCOUNT_SID" in result.detail


def test_long_text_is_clipped() -> None:
    text = sms_text(message("sms", PHONE, body="长" * 5000))
    assert len(text) == MAX_BODY_CHARS and text.endswith("…")
    assert sms_text(message("sms", PHONE, body="")) == CHINESE_TITLE
