"""Alibaba Cloud SMS: ACS3-HMAC-SHA256 against the published example and a fake that
checks every request's signature its own way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from herald.consumers.channels.aliyun_sms import AliyunSmsChannel, acs3_authorization, sha256_hex
from herald.consumers.channels.base import Outcome
from herald.provider_fakes import Fakes, Reply
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import provider_config
from tests.consumers.helpers.messages import message

PHONE = "+8613800138000"


def test_signature_matches_alibaba_clouds_published_example() -> None:
    # "Request syntax and signature method V3" (help.aliyun.com): RunInstances in
    # cn-shanghai, POST, empty body, key YourAccessKeyId / YourAccessKeySecret.
    headers = {"host": "ecs.cn-shanghai.aliyuncs.com", "x-acs-action": "RunInstances",
               "x-acs-content-sha256": sha256_hex(b""), "x-acs-date": "2023-10-26T09:01:01Z",
               "x-acs-signature-nonce": "d410180a5abf7fe235dd9b74aca91fc0",
               "x-acs-version": "2014-05-26"}
    query = "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    assert acs3_authorization("POST", "/", query, headers, b"", "YourAccessKeyId",
                              "YourAccessKeySecret") == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804")


@pytest.fixture
async def channel(channel_settings: Settings, fakes: Fakes) -> AsyncIterator[AliyunSmsChannel]:
    sms = AliyunSmsChannel(provider_config(channel_settings, fakes, sms_provider="aliyun"))
    try:
        yield sms
    finally:
        await sms.aclose()


async def test_a_template_variant_is_sent_signed(channel: AliyunSmsChannel,
                                                 fakes: Fakes) -> None:
    variant = {"template_code": "SMS_90210", "params": {"code": "4321", "名字": "张三 & co"},
               "sign_name": "Herald商城"}
    result = await channel.send(message("sms", PHONE, variant=variant))
    assert result.outcome is Outcome.SENT and result.provider_id == "00000001^0"
    (got,) = fakes.aliyun.received
    assert got.verified  # the fake recomputed the signature from what it received
    assert got.query["PhoneNumbers"] == "8613800138000"
    assert got.query["TemplateCode"] == "SMS_90210" and got.query["SignName"] == "Herald商城"
    assert orjson.loads(got.query["TemplateParam"]) == {"code": "4321", "名字": "张三 & co"}
    assert got.query["OutId"] == message("sms", PHONE).idempotency_key


async def test_without_a_variant_the_default_template_gets_the_text(
        channel: AliyunSmsChannel, fakes: Fakes) -> None:
    assert (await channel.send(message("sms", PHONE, title="验证码 1234", body=""))).ok
    (got,) = fakes.aliyun.received
    assert got.query["TemplateCode"] == "SMS_154950909"
    assert orjson.loads(got.query["TemplateParam"]) == {"content": "验证码 1234"}


async def test_a_wrong_secret_is_refused_by_the_signature_check(
        channel_settings: Settings, fakes: Fakes) -> None:
    sms = AliyunSmsChannel(provider_config(channel_settings, fakes,
                                           aliyun_access_key_secret="not-the-secret"))
    try:
        result = await sms.send(message("sms", PHONE))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.FAILED and result.code == "SignatureDoesNotMatch"
    assert "[aliyun SignatureDoesNotMatch]" in result.detail
    assert not fakes.aliyun.received[0].verified


async def test_throttling_retries_and_a_bad_number_fails_with_the_code(
        channel: AliyunSmsChannel, fakes: Fakes) -> None:
    fakes.aliyun.script(
        Reply(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"}),
        Reply(400, {"Code": "Throttling.User", "Message": "Request was denied"},
              headers={"Retry-After": "7"}),
        Reply(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}),
    )
    limited = await channel.send(message("sms", PHONE))
    assert limited.outcome is Outcome.RETRY and limited.code == "isv.BUSINESS_LIMIT_CONTROL"
    throttled = await channel.send(message("sms", PHONE))
    assert throttled.outcome is Outcome.RETRY and throttled.retry_after_s == 7.0
    bad = await channel.send(message("sms", PHONE))
    assert bad.outcome is Outcome.FAILED and bad.code == "isv.MOBILE_NUMBER_ILLEGAL"
    assert "[aliyun isv.MOBILE_NUMBER_ILLEGAL]" in bad.detail


async def test_bad_input_fails_without_a_request(channel: AliyunSmsChannel,
                                                 fakes: Fakes) -> None:
    assert (await channel.send(message("sms", "13800138000"))).outcome is Outcome.FAILED
    assert fakes.aliyun.received == []
