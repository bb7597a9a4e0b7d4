"""The provider registry: settings choose each channel's provider, and a worker refuses
to start with a configured provider that lacks what it needs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from herald.consumers.channels import CHANNEL_NAMES, Provider
from herald.consumers.channels.registry import PROVIDERS, check, chosen, open_channel
from herald.provider_fakes import ec_key
from herald.streams.errors import SettingsError
from herald.streams.settings import Settings
from tests.consumers.helpers import REPO

PEM, _ = ec_key()


@pytest.mark.parametrize(("changes", "channel", "cls"), [
    ({}, "sms", "SmsChannel"),
    ({"sms_provider": "aliyun"}, "sms", "AliyunSmsChannel"),
    ({"sms_provider": "tencent"}, "sms", "TencentSmsChannel"),
    ({}, "wechat", "WeChatChannel"),
    ({"wechat_provider": "official"}, "wechat", "WeChatOfficialChannel"),
    ({"wechat_provider": "wecom"}, "wechat", "WeComChannel"),
    ({}, "webhook", "WebhookChannel"),
    ({}, "email", "EmailChannel"),
])
async def test_the_settings_choose_the_provider(settings: Settings, redis: Any,
                                                changes: dict[str, Any], channel: str,
                                                cls: str) -> None:
    opened = open_channel(channel, settings.replace(**changes), redis)
    try:
        assert type(opened).__name__ == cls and opened.name == channel
        assert isinstance(opened, Provider) and opened.provider in PROVIDERS[channel]
    finally:
        await opened.aclose()


def test_every_channel_has_providers_and_push_uses_the_listed_ones(settings: Settings) -> None:
    assert set(CHANNEL_NAMES) == set(PROVIDERS)
    assert chosen("push", settings) == ["fcm", "apns"]
    assert chosen("push", settings.replace(push_providers=("apns",))) == ["apns"]
    with pytest.raises(ValueError, match="unknown channel"):
        chosen("pigeon", settings)


def test_unconfigured_defaults_start_and_fail_their_sends_later(settings: Settings) -> None:
    check(settings, CHANNEL_NAMES)  # nothing set: nothing to check (as before providers)


@pytest.mark.parametrize(("changes", "message"), [
    ({"sms_provider": "aliyun"}, "HERALD_ALIYUN_ACCESS_KEY_ID, HERALD_ALIYUN_ACCESS_KEY_SECRET"),
    ({"sms_provider": "tencent", "tencent_secret_id": "x"}, "HERALD_TENCENT_SECRET_KEY"),
    ({"sms_account_sid": "AC1"}, "HERALD_SMS_AUTH_TOKEN, HERALD_SMS_FROM"),
    ({"wechat_provider": "wecom", "wecom_corp_id": "c", "wecom_secret": "s",
      "wecom_agent_id": "abc"}, "numeric AgentId"),
    ({"wechat_provider": "official"}, "HERALD_WECHAT_APPID"),
    ({"apns_team_id": "T"}, "HERALD_APNS_KEY_ID"),
    ({"apns_team_id": "T", "apns_key_id": "K", "apns_topic": "a.b",
      "apns_private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"},
     "HERALD_APNS_PRIVATE_KEY"),
    ({"fcm_credentials": "/nonexistent/sa.json"}, "HERALD_FCM_CREDENTIALS"),
    ({"fcm_credentials": '{"client_email": "a@b"}'}, "lacks private_key"),
])
def test_a_configured_provider_missing_settings_is_refused(
        settings: Settings, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        check(settings.replace(**changes), CHANNEL_NAMES)


def test_a_complete_provider_passes(settings: Settings) -> None:
    check(settings.replace(apns_team_id="T", apns_key_id="K", apns_topic="a.b",
                           apns_private_key=PEM), CHANNEL_NAMES)
    check(settings.replace(sms_provider="aliyun"), ["webhook"])  # sms is not started


def test_herald_worker_exits_2_naming_the_missing_settings(settings: Settings) -> None:
    env = {"HERALD_SMS_PROVIDER": "tencent", "HERALD_PREFIX": settings.prefix,
           "REDIS_URL": settings.redis_url or "", "PYTHONPATH": str(REPO),
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "herald.cli", "worker", "--roles", "sms"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("herald: error: the tencent provider of sms needs "
                                "HERALD_TENCENT_SECRET_ID"), done.stderr
    assert "Traceback" not in done.stderr
