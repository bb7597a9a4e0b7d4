"""Routing by priority through the real delivery roles and the provider fakes: a critical
SMS goes ahead of queued bulk sends within the global limit, preferences are checked
again when a waiting send's turn comes, quiet hours hold bulk sends only, and a device
whose token the provider reports invalid is removed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.api.routes_devices import device_id
from herald.consumers.delivery.queries import DeliveryQueries
from herald.provider_fakes import Fakes, fcm_error
from herald.streams.events import DeviceRegistered, DeviceRemoved, PreferencesChanged
from tests.conftest import log_entries
from tests.consumers.channels.conftest import fakes, provider_config  # noqa: F401 (fixture)
from tests.consumers.delivery.conftest import Stack, wait_until
from tests.consumers.delivery.test_ratelimit_delivery import most_in_window

LIMIT = 4  # sms per second; the critical reserve (10 %, at least one) keeps 1 of them


def _arrivals(served: Fakes, phone: str) -> list[float]:
    return [r.at for r in served.aliyun.received
            if r.verified and r.query.get("PhoneNumbers") == phone.lstrip("+")]


async def test_a_critical_sms_goes_ahead_of_queued_bulk_and_the_limit_holds(
        stack: Stack, fakes: Fakes) -> None:  # noqa: F811 (fixture)
    stack.settings = provider_config(stack.settings, fakes, sms_provider="aliyun",
                                     rate_limits=f"sms={LIMIT}/s")
    bulk_phone, vip_phone = "+8613800000001", "+8613800000002"
    await stack.profile("bulk", phone=bulk_phone)
    await stack.profile("vip", phone=vip_phone)
    stack.start_channel("sms")
    bulk = [await stack.notify("bulk", f"sale {i}", channels=("sms",), inbox=False)
            for i in range(24)]
    await wait_until(lambda: len(_arrivals(fakes, bulk_phone)) >= 3)
    published = time.monotonic()
    code = await stack.notify("vip", "code 314159", channels=("sms",), inbox=False,
                              priority="critical")
    await wait_until(lambda: bool(_arrivals(fakes, vip_phone)), timeout=10)
    waited = _arrivals(fakes, vip_phone)[0] - published
    assert waited < 1.0, waited  # not behind the ~6 s of bulk still queued
    doc = await stack.wait_state(code.id, "sms")
    assert doc["channels"]["sms"]["state"] == "sent"
    assert len(_arrivals(fakes, bulk_phone)) < len(bulk)  # bulk still waiting
    await wait_until(lambda: len(_arrivals(fakes, bulk_phone)) >= len(bulk), timeout=30)
    times = [r.at for r in fakes.aliyun.received if r.verified]
    # Redis grants are exact per 1 s window; arrivals add jitter, hence 0.8 s.
    assert most_in_window(times, 0.8) <= LIMIT
    assert len(times) == len(bulk) + 1  # every one sent once


async def test_preferences_are_checked_again_when_a_waiting_send_is_due(
        stack: Stack, fakes: Fakes) -> None:  # noqa: F811 (fixture)
    stack.settings = provider_config(stack.settings, fakes, sms_provider="aliyun",
                                     rate_limits="sms=1/s")
    phone = "+8613800000003"
    await stack.profile("ivy", phone=phone)
    stack.start_channel("sms")
    sent = [await stack.notify("ivy", f"promo {i}", channels=("sms",), category="promo")
            for i in range(6)]
    await wait_until(lambda: len(_arrivals(fakes, phone)) >= 1)
    opted = await stack.append("ivy", PreferencesChanged(preferences={"promo": {"sms": False}}))
    await stack.projected([opted])
    got_then = len(_arrivals(fakes, phone))
    docs = [await stack.wait_state(a.id, "sms", timeout=20) for a in sent]
    states = [d["channels"]["sms"]["state"] for d in docs]
    skipped = [d for d in docs if d["channels"]["sms"]["state"] == "skipped"]
    assert states.count("sent") <= got_then + 1 and skipped, states
    assert "while the send waited" in skipped[0]["channels"]["sms"]["last_error"]
    assert len(_arrivals(fakes, phone)) == states.count("sent")


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


async def test_quiet_hours_hold_bulk_sends_but_not_critical_ones(
        stack: Stack, fakes: Fakes) -> None:  # noqa: F811 (fixture)
    stack.settings = provider_config(stack.settings, fakes, sms_provider="aliyun")
    phone = "+8613800000004"
    now = datetime.now(UTC)
    await stack.profile("quinn", phone=phone)
    quiet = {"start": _hhmm(now - timedelta(hours=1)), "end": _hhmm(now + timedelta(hours=1)),
             "timezone": "UTC"}
    await stack.append("quinn", PreferencesChanged(preferences={}, quiet_hours=quiet))
    stack.start_channel("sms")
    held = await stack.notify("quinn", "newsletter", channels=("sms",))
    urgent = await stack.notify("quinn", "card blocked", channels=("sms",),
                                priority="critical")
    doc = await stack.wait_state(urgent.id, "sms")
    assert doc["channels"]["sms"]["state"] == "sent"
    assert len(_arrivals(fakes, phone)) == 1  # only the critical one
    status = await stack.status(held.id)
    assert status is None or status["channels"].get("sms", {}).get("state") not in (
        "sent", "failed", "skipped")


async def test_a_device_the_provider_reports_invalid_is_removed(
        stack: Stack, fakes: Fakes, redis: Any) -> None:  # noqa: F811 (fixture)
    stack.settings = provider_config(stack.settings, fakes, push_providers=("fcm",))
    good, stale = "fcm-good-token-000001", "fcm-stale-token-00002"
    for token in (good, stale):
        await stack.append("pat", DeviceRegistered(
            device_id=device_id("fcm", token), platform="fcm", token=token))
    original = fakes.fcm.answer

    async def answer(success: Any, status: int = 200) -> Any:  # stale token → UNREGISTERED
        last = fakes.fcm.received[-1].json()["message"]["token"]
        if last == stale:
            fakes.fcm.replies.insert(0, fcm_error(404, "UNREGISTERED", "not registered"))
        return await original(success, status)

    fakes.fcm.answer = answer  # type: ignore[method-assign]
    stack.start_channel("push")
    sent = await stack.notify("pat", "Your parcel arrived", channels=("push",))
    doc = await stack.wait_state(sent.id, "push")
    assert doc["channels"]["push"]["state"] == "sent"
    queries = DeliveryQueries(redis, stack.settings)

    async def removed() -> bool:
        return [d["id"] for d in await queries.devices("pat")] == [device_id("fcm", good)]

    deadline = time.monotonic() + 10
    while not await removed():
        assert time.monotonic() < deadline, await queries.devices("pat")
        await asyncio.sleep(0.05)
    entries = await log_entries(redis, stack.settings, stack.producer.partition("pat"))
    [gone] = [e.payload for e in entries if isinstance(e.payload, DeviceRemoved)]
    assert gone.device_id == device_id("fcm", stale) and "UNREGISTERED" in gone.reason
