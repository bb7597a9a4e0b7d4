"""Webhook channel against a real receiver that verifies signatures per the spec."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from herald.consumers.channels.base import OutboundMessage, Outcome
from herald.consumers.channels.webhook import WebhookChannel, decode_secret, sign
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import (
    SHORT_TIMEOUT_S,
    WEBHOOK_SECRET,
    FakeServer,
    Reply,
    WebhookReceiver,
    free_port,
)
from tests.consumers.helpers.messages import CHINESE_BODY, CHINESE_TITLE, message


@pytest.fixture
async def channel(channel_settings: Settings) -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(channel_settings)
    try:
        yield webhook
    finally:
        await webhook.aclose()


def to(receiver: FakeServer, path: str = "/hook", **kw: Any) -> OutboundMessage:
    return message("webhook", receiver.url + path, secret=WEBHOOK_SECRET, **kw)


def test_signature_matches_the_reference_vector() -> None:
    # The vector of the Standard Webhooks reference libraries' own tests.
    signature = sign(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secrets_decode_with_or_without_prefix_and_rotation_signs_twice() -> None:
    raw = base64.b64encode(b"k" * 24).decode()
    assert decode_secret("whsec_" + raw) == decode_secret(raw) == b"k" * 24
    both = sign(["whsec_" + raw, WEBHOOK_SECRET], "id1", 1, b"{}").split(" ")
    assert len(both) == 2 and all(part.startswith("v1,") for part in both)
    assert both[0] != both[1]


async def test_success_is_signed_per_spec_and_chinese_round_trips(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver
) -> None:
    msg = to(webhook_receiver)
    result = await channel.send(msg)
    assert result.outcome is Outcome.SENT and result.code == 200
    assert result.provider_id == msg.idempotency_key
    (got,) = webhook_receiver.received
    assert got.verified, got.headers
    assert got.headers["webhook-id"] == msg.idempotency_key
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 5
    assert got.headers["content-type"].startswith("application/json")
    document = orjson.loads(got.body)
    assert document["type"] == "notification.created"
    assert document["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert document["data"]["title"] == CHINESE_TITLE
    assert document["data"]["body"] == CHINESE_BODY
    assert document["data"]["data"] == {"order_id": 1024, "备注": "加急"}
    assert CHINESE_TITLE.encode() in got.body  # raw UTF-8, not \u escapes


async def test_a_wrong_secret_fails_verification_in_the_receiver(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver
) -> None:
    other = "whsec_" + base64.b64encode(b"not-the-receiver-secret!!").decode()
    msg = message("webhook", webhook_receiver.url + "/hook", secret=other)
    await channel.send(msg)
    assert webhook_receiver.received[0].verified is False


async def test_retries_carry_the_same_webhook_id_and_body(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(500, {"error": "boom"}))
    first = await channel.send(to(webhook_receiver, attempt=1))
    second = await channel.send(to(webhook_receiver, attempt=2))
    assert first.outcome is Outcome.RETRY and first.code == 500 and "boom" in first.detail
    assert second.outcome is Outcome.SENT
    a, b = webhook_receiver.received
    assert a.headers["webhook-id"] == b.headers["webhook-id"]
    assert a.body == b.body
    assert a.verified and b.verified


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(502), Outcome.RETRY),
        (Reply(503), Outcome.RETRY),
        (Reply(400, {"error": "bad"}), Outcome.FAILED),
        (Reply(404), Outcome.FAILED),
        (Reply(410), Outcome.DISABLED),
        (Reply(204), Outcome.SENT),
    ],
)
async def test_status_codes_map_to_outcomes(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver, reply: Reply, outcome: Outcome
) -> None:
    webhook_receiver.script(reply)
    result = await channel.send(to(webhook_receiver))
    assert result.outcome is outcome
    assert result.code == reply.status


async def test_429_honours_retry_after(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(429, headers={"Retry-After": "7"}))
    result = await channel.send(to(webhook_receiver))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after_s == 7.0


async def test_timeout_is_retryable(
    channel_settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(200, delay_s=5.0))
    webhook = WebhookChannel(channel_settings.replace(webhook_timeout_s=SHORT_TIMEOUT_S))
    started = time.monotonic()
    try:
        result = await webhook.send(to(webhook_receiver))
    finally:
        await webhook.aclose()
    assert result.outcome is Outcome.RETRY
    assert "timed out" in result.detail
    assert time.monotonic() - started < 2.0


async def test_connection_refused_is_retryable(channel: WebhookChannel) -> None:
    msg = message("webhook", f"http://127.0.0.1:{free_port()}/hook", secret=WEBHOOK_SECRET)
    result = await channel.send(msg)
    assert result.outcome is Outcome.RETRY


async def test_redirects_are_not_followed(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver
) -> None:
    result = await channel.send(to(webhook_receiver, "/moved"))
    assert result.outcome is Outcome.FAILED and result.code == 301
    assert webhook_receiver.received == []  # /hook was never called


@pytest.mark.parametrize(
    ("address", "secret", "why"),
    [
        ("ftp://127.0.0.1/hook", WEBHOOK_SECRET, "invalid webhook URL"),
        ("not a url", WEBHOOK_SECRET, "invalid webhook URL"),
        ("http://127.0.0.1:9/hook", None, "no webhook secret"),
        ("http://127.0.0.1:9/hook", "whsec_***not-base64***", "not base64"),
    ],
)
async def test_bad_endpoint_configuration_fails_without_a_request(
    channel: WebhookChannel, address: str, secret: str | None, why: str
) -> None:
    result = await channel.send(message("webhook", address, secret=secret))
    assert result.outcome is Outcome.FAILED
    assert why in result.detail


async def test_data_that_is_not_json_fails_permanently(
    channel: WebhookChannel, webhook_receiver: WebhookReceiver
) -> None:
    result = await channel.send(to(webhook_receiver, data={"blob": {1, 2}}))
    assert result.outcome is Outcome.FAILED and "not JSON" in result.detail
    assert webhook_receiver.received == []
