"""Tencent Cloud SMS: TC3-HMAC-SHA256 against the published example and a fake that
checks every request's signature its own way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.consumers.channels.base import Outcome
from herald.consumers.channels.tencent_sms import TencentSmsChannel, tc3_authorization
from herald.provider_fakes import Fakes, Reply
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import provider_config
from tests.consumers.helpers.messages import message

PHONE = "+8613800138000"


def test_signature_matches_tencent_clouds_published_example() -> None:
    # "Signature v3" (Tencent Cloud API 3.0): DescribeInstances, 2019-02-25.
    payload = (b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], '
               b'"Name": "instance-name"}]}')
    headers = {"content-type": "application/json; charset=utf-8",
               "host": "cvm.tencentcloudapi.com"}
    assert tc3_authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
                             "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "cvm", 1551113065, headers,
                             payload) == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168")


@pytest.fixture
async def channel(channel_settings: Settings, fakes: Fakes) -> AsyncIterator[TencentSmsChannel]:
    sms = TencentSmsChannel(provider_config(channel_settings, fakes, sms_provider="tencent"))
    try:
        yield sms
    finally:
        await sms.aclose()


async def test_a_template_variant_is_sent_signed(channel: TencentSmsChannel,
                                                 fakes: Fakes) -> None:
    variant = {"template_code": "1110", "params": ["4321", "5"]}
    result = await channel.send(message("sms", PHONE, variant=variant))
    assert result.outcome is Outcome.SENT and result.provider_id == "2640:1"
    (got,) = fakes.tencent.received
    assert got.verified and got.headers["x-tc-action"] == "SendSms"
    assert got.headers["x-tc-version"] == "2021-01-11"
    doc = got.json()
    assert doc["PhoneNumberSet"] == [PHONE] and doc["TemplateId"] == "1110"
    assert doc["TemplateParamSet"] == ["4321", "5"] and doc["SmsSdkAppId"] == "1400006666"
    assert doc["SessionContext"] == message("sms", PHONE).idempotency_key


async def test_a_wrong_key_is_refused_by_the_signature_check(
        channel_settings: Settings, fakes: Fakes) -> None:
    sms = TencentSmsChannel(provider_config(channel_settings, fakes,
                                            tencent_secret_key="not-the-key"))
    try:
        result = await sms.send(message("sms", PHONE))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.FAILED
    assert result.code == "AuthFailure.SignatureFailure" and not fakes.tencent.received[0].verified


def _status(code: str) -> Reply:
    return Reply(200, {"Response": {"SendStatusSet": [{"SerialNo": "", "PhoneNumber": PHONE,
                                                       "Code": code, "Message": code}],
                                    "RequestId": "r"}})


async def test_throttling_retries_and_a_bad_number_fails_with_the_code(
        channel: TencentSmsChannel, fakes: Fakes) -> None:
    fakes.tencent.script(
        _status("LimitExceeded.PhoneNumberThirtySecondLimit"),
        Reply(200, {"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "x"},
                                 "RequestId": "r"}}),
        _status("InvalidParameterValue.IncorrectPhoneNumber"),
        Reply(503, {}),
    )
    limited = await channel.send(message("sms", PHONE))
    assert limited.outcome is Outcome.RETRY
    assert limited.code == "LimitExceeded.PhoneNumberThirtySecondLimit"
    assert (await channel.send(message("sms", PHONE))).outcome is Outcome.RETRY
    bad = await channel.send(message("sms", PHONE))
    assert bad.outcome is Outcome.FAILED
    assert "[tencent InvalidParameterValue.IncorrectPhoneNumber]" in bad.detail
    assert (await channel.send(message("sms", PHONE))).outcome is Outcome.RETRY
