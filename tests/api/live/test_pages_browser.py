"""The demo inbox in a real headless Chromium: live badge and list without reload,
mark read, resume after the stream drops, Chinese text; screenshots as artifacts.

Needs Debian's ``chromium`` (and ``fonts-noto-cjk`` for Chinese glyphs): ``make
browser`` installs both. Without Chromium the tests skip with a message, except
under ``CI=true``, where they must run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY
from tests.api.live.conftest import ARTIFACTS, WAIT_MS, LiveClient, running_live

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("projector")]


@pytest.fixture
async def dev_live(live_settings: Settings) -> AsyncIterator[LiveClient]:
    async with running_live(live_settings.replace(dev_mode=True)) as client:
        yield client


async def test_the_demo_inbox_is_the_element_live_and_in_two_languages(
        browser: Any, dev_live: LiveClient) -> None:
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await dev_live.publish("pat", "Welcome to Herald", body="Your workspace is ready.",
                           category="team")
    await page.goto(f"{dev_live.url}/?user=pat")
    inbox, bell = page.locator("#inbox"), page.locator("#bell")
    await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
    await expect(bell).to_have_attribute("state", "live", timeout=WAIT_MS)
    badge = bell.locator(".badge")  # the top bar's bell (the element, as a popover)
    await expect(badge).to_have_text("1", timeout=WAIT_MS)
    items = inbox.locator(".item")  # the inline element
    await expect(items).to_have_count(1)

    # published by a service while the page is open: both elements follow, no reload
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await dev_live.publish("pat", "账单已生成", body="您的三月账单（¥328.00）已可下载。",
                           category="billing")
    await dev_live.publish("pat", "Li Wei mentioned you",
                           body="“Can you review the rollout plan before Friday?”",
                           category="comments")
    await expect(badge).to_have_text("3", timeout=WAIT_MS)
    await expect(items).to_have_count(3)
    await expect(items.first).to_contain_text("Li Wei mentioned you")
    await expect(inbox).to_contain_text("账单已生成")
    assert navigations == []

    # mark one read in the inline list: the bell's badge follows (over its own stream)
    target = items.filter(has_text="Welcome to Herald")
    await target.locator("[data-action=read]").click()
    await expect(badge).to_have_text("2", timeout=WAIT_MS)
    await expect(target).not_to_have_class(re.compile(r"\bunread\b"))

    # the streams drop (server side); the elements resume without a reload
    for conn in _connections(dev_live):
        conn.close("slow_consumer")
    await dev_live.publish("pat", "Missed while reconnecting", category="system")
    await expect(items).to_have_count(4, timeout=WAIT_MS * 2)
    await expect(badge).to_have_text("3")
    assert navigations == []

    # the demo's sample button publishes to yourself through the dev route
    await page.locator("#dev-sample").click()
    await expect(items).to_have_count(5, timeout=WAIT_MS)
    await page.mouse.move(1200, 700)
    await page.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=False)
    await bell.locator(".bell").click()  # the popover of the top bar's element
    await expect(bell.locator(".panel")).to_be_visible()
    await expect(bell.locator(".item")).to_have_count(5)
    await page.screenshot(path=str(ARTIFACTS / "inbox-popover.png"), full_page=False)
    await page.keyboard.press("Escape")

    # mark all read, then Chinese
    await inbox.locator(".mark-all").click()
    await expect(badge).to_be_hidden(timeout=WAIT_MS)
    await page.locator("#lang").click()
    await expect(inbox.locator(".heading")).to_have_text("通知")
    await expect(inbox.locator(".state")).to_have_text("实时")
    await expect(page.locator("#dev h3")).to_have_text("演示控制")
    await page.screenshot(path=str(ARTIFACTS / "inbox-zh.png"))
    assert errors == []


async def test_operator_page_shows_partitions(browser: Any, dev_live: LiveClient) -> None:
    from playwright.async_api import expect

    for n in range(5):
        await dev_live.publish(f"user{n}", f"n{n}")
    page = await browser.new_page(viewport={"width": 1400, "height": 900}, locale="en-US")
    await page.goto(f"{dev_live.url}/admin")
    await page.locator("#key").fill(SERVICE_KEY)
    await page.locator("#key-form button").click()
    rows = page.locator("#partitions tbody tr")
    await expect(rows).to_have_count(dev_live.settings.partitions, timeout=WAIT_MS)
    await expect(page.locator("#groups")).to_contain_text("projector")
    await expect(page.locator("#cards")).not_to_contain_text("Appended / s\n—", timeout=WAIT_MS)
    await page.wait_for_timeout(2500)  # a second refresh fills in the throughput
    await page.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)


def _connections(client: LiveClient) -> list[Any]:
    from herald.api.live.hub import HUB

    hub = client.serving.runner.app[HUB]
    return [conn for conns in hub.users.values() for conn in conns]
