"""The channel interface's pure helpers: keys, recipients, Retry-After, HTTP classes."""

from __future__ import annotations

import re
import time
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.consumers.channels import CHANNEL_NAMES, Channel, open_channel
from herald.consumers.channels.base import (
    MAX_RETRY_AFTER_S,
    Outcome,
    Recipient,
    SendResult,
    classify_http,
    idempotency_key,
    parse_retry_after,
    recipient_for,
)
from herald.streams.settings import Settings
from tests.consumers.helpers.messages import message


@given(st.text(min_size=1), st.sampled_from(CHANNEL_NAMES), st.text(min_size=1))
def test_idempotency_key_is_stable_and_safe_for_webhook_ids(
    notification_id: str, channel: str, address: str
) -> None:
    nid = re.sub(r"[^0-9A-Z]", "A", notification_id.upper())
    key = idempotency_key(nid, channel, address)
    assert key == idempotency_key(nid, channel, address)
    assert re.fullmatch(r"[A-Za-z0-9_]+", key)  # no '.', no address in clear
    assert key != idempotency_key(nid, channel, address + "x")
    assert key != idempotency_key(nid + "B", channel, address)


def test_key_differs_per_channel_and_ignores_the_attempt() -> None:
    sms = message("sms", "+8613800138000", attempt=1)
    assert sms.idempotency_key == message("sms", "+8613800138000", attempt=4).idempotency_key
    assert sms.idempotency_key != message("wechat", "+8613800138000").idempotency_key


def test_recipient_from_profile_and_overrides() -> None:
    profile = {
        "phone": "+8613800138000",
        "email": "a@b.cn",
        "webhook_url": "https://x.example/hook",
        "webhook_secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
        "wechat_openid": None,
    }
    assert recipient_for("sms", profile) == Recipient(address="+8613800138000")
    assert recipient_for("wechat", profile) is None
    hook = recipient_for("webhook", profile)
    assert hook is not None and hook.secret == profile["webhook_secret"]
    assert "whsec" not in repr(hook)  # secrets never printed
    assert recipient_for("sms", profile, {"sms": "+8613900139000"}).address == "+8613900139000"  # type: ignore[union-attr]
    assert recipient_for("email", profile, {"email": "c@d.cn"}).address == "c@d.cn"  # type: ignore[union-attr]
    assert recipient_for("wechat", {}, {"wechat_openid": "o1"}) == Recipient(address="o1")


def test_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("999999999") == MAX_RETRY_AFTER_S
    now = time.time()
    in_a_minute = formatdate(now + 60, usegmt=True)
    assert 58 <= parse_retry_after(in_a_minute, now=now) <= 61  # type: ignore[operator]
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (299, None),
        (301, Outcome.FAILED),
        (400, Outcome.FAILED),
        (401, Outcome.FAILED),
        (410, Outcome.FAILED),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (504, Outcome.RETRY),
    ],
)
def test_http_classes(status: int, outcome: Outcome | None) -> None:
    result = classify_http(status, "5", "detail")
    assert (result.outcome if result else None) is outcome
    if result is not None and outcome is Outcome.RETRY:
        assert result.retry_after_s == 5.0


def test_results_clip_details() -> None:
    result = SendResult.failed("x " * 1000)
    assert len(result.detail) <= 300 and not result.ok and not result.retryable


async def test_factory_builds_every_channel(settings: Settings, redis: object) -> None:
    for name in CHANNEL_NAMES:
        channel = open_channel(name, settings, redis)
        try:
            assert isinstance(channel, Channel) and channel.name == name
        finally:
            await channel.aclose()
    with pytest.raises(ValueError, match="unknown channel"):
        open_channel("pigeon", settings, redis)
