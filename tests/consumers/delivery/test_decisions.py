"""Decisions end to end: preferences, critical categories, addresses, 410, expiry."""

from __future__ import annotations

import time

from herald.streams.producer import now_ms
from tests.consumers.channels.conftest import Reply, WebhookReceiver
from tests.consumers.delivery.conftest import Stack


async def test_opt_out_is_skipped_and_critical_categories_still_go(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    stack.settings = stack.settings.replace(critical_categories=("security",))
    await stack.webhook_profile("eve", webhook_receiver)
    await stack.preferences("eve", {"*": {"webhook": False}, "orders": {"webhook": True}})
    promo = await stack.notify("eve", "sale", category="promo")
    order = await stack.notify("eve", "shipped", category="orders")
    alert = await stack.notify("eve", "new login", category="security")
    stack.start_channel("webhook")
    skipped = await stack.wait_state(promo.id)
    assert skipped["channels"]["webhook"]["state"] == "skipped"
    assert "opted out" in skipped["channels"]["webhook"]["last_error"]
    assert skipped["channels"]["webhook"]["attempts"] == 0
    assert (await stack.wait_state(order.id))["channels"]["webhook"]["state"] == "sent"
    assert (await stack.wait_state(alert.id))["channels"]["webhook"]["state"] == "sent"
    titles = sorted(r.body.decode() for r in webhook_receiver.received)
    assert len(titles) == 2 and not any("sale" in t for t in titles)


async def test_no_address_is_skipped_with_the_reason_and_overrides_win(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    await stack.profile("fay", email="fay@example.com")  # no webhook URL, no secret
    nothing = await stack.notify("fay", "lonely")
    stack.start_channel("webhook")
    doc = await stack.wait_state(nothing.id)
    assert doc["channels"]["webhook"]["state"] == "skipped"
    assert "no webhook_url" in doc["channels"]["webhook"]["last_error"]
    await stack.webhook_profile("gus", webhook_receiver)
    other = webhook_receiver.url + "/hook?tenant=2"
    routed = await stack.notify("gus", "routed", recipients={"webhook": other})
    assert (await stack.wait_state(routed.id))["channels"]["webhook"]["state"] == "sent"
    [got] = webhook_receiver.received
    assert got.verified  # the profile's secret signs for the overriding URL


async def test_expired_is_never_sent(stack: Stack, webhook_receiver: WebhookReceiver) -> None:
    await stack.webhook_profile("hal", webhook_receiver)
    stale = await stack.notify("hal", "too late", expires_at=now_ms() - 1)
    fresh = await stack.notify("hal", "in time", expires_at=now_ms() + 60_000)
    stack.start_channel("webhook")
    doc = await stack.wait_state(stale.id)
    assert doc["channels"]["webhook"]["state"] == "expired"
    assert doc["expires_at"] is not None
    assert (await stack.wait_state(fresh.id))["channels"]["webhook"]["state"] == "sent"
    assert len(webhook_receiver.received) == 1


async def test_a_retry_due_after_expiry_is_expired_not_sent(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(503))
    stack.settings = stack.settings.replace(retry_schedule="1s")
    await stack.webhook_profile("ida", webhook_receiver)
    created = await stack.notify("ida", "soon stale", expires_at=now_ms() + 500)
    stack.start_channel("webhook")
    doc = await stack.wait_state(created.id)
    assert doc["channels"]["webhook"]["state"] == "expired"
    assert doc["channels"]["webhook"]["attempts"] == 1
    assert len(webhook_receiver.received) == 1


async def test_410_disables_the_endpoint_until_the_profile_is_set_again(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(410))
    await stack.webhook_profile("jon", webhook_receiver)
    gone = await stack.notify("jon", "first")
    stack.start_channel("webhook")
    doc = await stack.wait_state(gone.id)
    assert doc["channels"]["webhook"]["state"] == "failed"
    assert "410" in doc["channels"]["webhook"]["last_error"]
    profile = await stack.status_queries.profile("jon")
    assert set(profile["disabled"]) == {"webhook"}
    after = await stack.notify("jon", "second")
    doc = await stack.wait_state(after.id)
    assert doc["channels"]["webhook"]["state"] == "skipped"
    assert "disabled" in doc["channels"]["webhook"]["last_error"]
    assert len(webhook_receiver.received) == 1
    await stack.webhook_profile("jon", webhook_receiver)  # the service registers it again
    again = await stack.notify("jon", "third")
    assert (await stack.wait_state(again.id))["channels"]["webhook"]["state"] == "sent"
    assert (await stack.status_queries.profile("jon"))["disabled"] == {}


async def test_retry_after_is_honoured(stack: Stack, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.script(Reply(429, headers={"Retry-After": "1"}))
    await stack.webhook_profile("kim", webhook_receiver)
    created = await stack.notify("kim")
    stack.start_channel("webhook")
    pending = await stack.wait_state(created.id, states=("pending",))
    while pending["channels"]["webhook"]["attempts"] < 1:
        pending = await stack.wait_state(created.id, states=("pending",))
    started = time.monotonic()
    doc = await stack.wait_state(created.id)
    assert doc["channels"]["webhook"]["state"] == "sent"
    assert time.monotonic() - started >= 0.7  # ≥ 1 s after the 429 (less the polling)
    first, second = webhook_receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
