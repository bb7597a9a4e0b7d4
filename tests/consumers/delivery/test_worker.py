"""Delivery workers end to end: projector + channel role + real provider stand-ins."""

from __future__ import annotations

import asyncio
import time

import orjson

from herald.consumers.channels.base import idempotency_key
from herald.streams import codec
from tests.consumers.channels.conftest import WEBHOOK_SECRET, FakeTwilio, Reply, WebhookReceiver
from tests.consumers.delivery.conftest import Stack


async def log_events(stack: Stack, partition: int, prefix: str = "delivery.") -> list[str]:
    rows = await stack.redis.xrange(stack.producer.keys.stream(partition))
    return [env.type for env in (codec.decode(f[b"e"]) for _, f in rows)
            if env.type.startswith(prefix)]


async def test_webhook_is_signed_sent_once_and_status_says_sent(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    await stack.webhook_profile("ann", webhook_receiver)
    created = await stack.notify("ann", "order shipped", data={"order": 7})
    stack.start_channel("webhook")
    doc = await stack.wait_state(created.id)
    [got] = webhook_receiver.received
    assert got.verified
    url = webhook_receiver.url + "/hook"
    assert got.headers["webhook-id"] == idempotency_key(created.id, "webhook", url)
    assert orjson.loads(got.body)["data"]["data"] == {"order": 7}
    hook = doc["channels"]["webhook"]
    assert hook["state"] == "sent" and hook["attempts"] == 1 and hook["sent_at"]
    assert doc["channels"]["in_app"]["state"] == "sent"
    assert await log_events(stack, created.partition) == ["delivery.attempted",
                                                          "delivery.succeeded"]


async def test_500_and_timeout_are_retried_with_the_same_id_then_sent(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    stack.settings = stack.settings.replace(webhook_timeout_s=0.5)
    webhook_receiver.script(Reply(500, {"error": "boom"}), Reply(200, delay_s=3.0))
    await stack.webhook_profile("bob", webhook_receiver)
    created = await stack.notify("bob")
    started = time.monotonic()
    stack.start_channel("webhook")
    doc = await stack.wait_state(created.id)
    hook = doc["channels"]["webhook"]
    assert hook["state"] == "sent" and hook["attempts"] == 3, doc
    assert hook["last_error"] == "timed out"
    ids = {r.headers["webhook-id"] for r in webhook_receiver.received}
    assert len(webhook_receiver.received) == 3 and len(ids) == 1
    assert time.monotonic() - started >= 0.16 + 0.32  # both back-offs (jitter -20 %)
    assert await log_events(stack, created.partition) == [
        "delivery.attempted", "delivery.failed", "delivery.attempted", "delivery.failed",
        "delivery.attempted", "delivery.succeeded"]


async def test_400_fails_at_once_and_is_not_retried(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(400, {"error": "bad"}))
    await stack.webhook_profile("cid", webhook_receiver)
    created = await stack.notify("cid")
    stack.start_channel("webhook")
    doc = await stack.wait_state(created.id)
    hook = doc["channels"]["webhook"]
    assert hook["state"] == "failed" and hook["attempts"] == 1
    assert hook["last_error"].startswith("HTTP 400")
    await asyncio.sleep(0.8)  # longer than the whole retry schedule
    assert len(webhook_receiver.received) == 1


async def test_sms_carries_the_idempotency_key(stack: Stack, twilio: FakeTwilio) -> None:
    stack.settings = stack.settings.replace(
        sms_base_url=twilio.url, sms_account_sid=twilio.sid, sms_auth_token=twilio.token,
        sms_from=twilio.sender)
    await stack.profile("dan", phone="+8613800000000")
    created = await stack.notify("dan", "your refund", channels=("sms", "in_app"))
    stack.start_channel("sms")
    doc = await stack.wait_state(created.id, "sms")
    assert doc["channels"]["sms"]["state"] == "sent"
    [got] = twilio.received
    assert got.form["To"] == "+8613800000000"
    assert got.headers["i-twilio-idempotency-token"] == idempotency_key(
        created.id, "sms", "+8613800000000")


async def test_a_profile_aimed_at_loopback_is_never_called_and_fails_for_good(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    """The report of #24: a profile pointing at 127.0.0.1 (appended around the API, so
    the acceptance check never saw it) made the worker POST there, twice. Now the
    worker refuses it once, for good, and the receiver gets nothing."""
    stack.settings = stack.settings.replace(webhook_allow_cidrs="")
    await stack.profile("eve", webhook_url=webhook_receiver.url + "/internal-admin",
                        webhook_secret=WEBHOOK_SECRET)
    created = await stack.notify("eve")
    stack.start_channel("webhook")
    doc = await stack.wait_state(created.id)
    hook = doc["channels"]["webhook"]
    assert hook["state"] == "failed" and hook["attempts"] == 1, doc
    assert hook["last_error"].startswith("destination refused")
    assert "loopback" in hook["last_error"]
    await asyncio.sleep(0.8)  # longer than the whole retry schedule
    assert webhook_receiver.received == []
