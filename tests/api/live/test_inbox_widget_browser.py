"""The browser client and <herald-inbox> in a real Chromium, embedded by a page of
another origin (as a product would): badge count, live arrival, actions, keyboard and
screen-reader wiring, theming, Chinese strings, token refresh, resume without gaps or
repeats after forced disconnects, reconnect after the API restarts, long-poll fallback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from herald.api.app import create_app
from herald.api.auth import mint_token
from herald.api.live.hub import HUB
from herald.api.server import Serving, serve
from herald.streams.events import NotificationCreated
from herald.streams.producer import Producer
from herald.streams.server import free_port
from herald.streams.settings import Settings
from tests.api.conftest import SECRET
from tests.api.live.conftest import LIVE_MODULES, WAIT_MS, LiveClient, running_live

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("projector")]

PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>a product</title>
<body><header style="display: flex; justify-content: space-between; align-items: center">
<h1>My product</h1><span id="slot"></span></header>
<script type="module">
const q = new URLSearchParams(location.search);
const api = q.get("api");
window.log = []; window.tokenCalls = []; window.states = [];
if (q.get("no_eventsource")) window.EventSource = undefined;
await import(`${api}/v1/inbox.js`);
const el = document.createElement("herald-inbox");
el.id = "inbox";
el.setAttribute("base-url", api);
for (const name of ["mode", "lang", "transport"]) {
  if (q.get(name)) el.setAttribute(name, q.get(name));
}
el.addEventListener("herald-message", (e) => window.log.push(e.detail.message));
el.addEventListener("herald-state", (e) => window.states.push(e.detail.state));
el.tokenProvider = async ({ refresh }) => {
  window.tokenCalls.push(refresh);
  return (await fetch(`/token?n=${window.tokenCalls.length}`)).text();
};
(q.get("mode") === "inline" ? document.body : document.getElementById("slot")).append(el);
</script></body></html>"""


@dataclass
class Embedding:
    """The page's origin: serves the page and mints its user's tokens (`short_ttl` for
    the first one, so a test can make it expire)."""

    user: str
    short_ttl: float | None = None
    serving: Serving | None = None

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def token(self, request: web.Request) -> web.Response:
        first = request.query.get("n") == "1"
        ttl = self.short_ttl if first and self.short_ttl else 3600
        return web.Response(text=mint_token(SECRET, self.user, ttl))

    @property
    def url(self) -> str:
        assert self.serving is not None
        return self.serving.url


@contextlib.asynccontextmanager
async def embedding(user: str, short_ttl: float | None = None) -> AsyncIterator[Embedding]:
    site = Embedding(user, short_ttl)
    app = web.Application()
    app.router.add_get("/", site.page)
    app.router.add_get("/token", site.token)
    site.serving = await serve(app, "127.0.0.1", 0)
    try:
        yield site
    finally:
        await site.serving.stop()


async def open_page(browser: Any, site: Embedding, api: str, **params: str) -> Any:
    page = await browser.new_page(viewport={"width": 1100, "height": 800}, locale="en-US")
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    query = "&".join(f"{k}={v}" for k, v in {"api": api, **params}.items())
    await page.goto(f"{site.url}/?{query}")
    return page


def drop_streams(live: LiveClient) -> int:
    """Close every live connection server-side (the clients must resume)."""
    hub = live.serving.runner.app[HUB]
    conns = [c for users in hub.users.values() for c in users]
    for conn in conns:
        conn.close("slow_consumer")
    return len(conns)


async def created_log(page: Any) -> list[tuple[str, str]]:
    return [tuple(x) for x in await page.evaluate(
        "window.log.filter((m) => m.type === 'item.created').map((m) => [m.item.id, m.position])")]


async def test_badge_live_arrival_actions_keyboard_and_theme(
        browser: Any, live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with embedding("quinn") as site, running_live(
            live_settings.replace(cors_origins=(site.url,))) as live:
        await live.publish("quinn", "Invoice ready", category="billing")
        await live.publish("quinn", "Build passed", body="main is green")
        page = await open_page(browser, site, live.url)
        inbox = page.locator("#inbox")
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        badge = inbox.locator(".badge")
        bell = inbox.locator(".bell")
        await expect(badge).to_have_text("2", timeout=WAIT_MS)
        await expect(bell).to_have_attribute("aria-label", "Notifications, 2 unread")
        panel = inbox.locator(".panel")
        await expect(panel).to_be_hidden()

        # keyboard: the bell opens the panel, arrows move between items, Escape closes
        await bell.focus()
        await page.keyboard.press("Enter")
        await expect(panel).to_be_visible()
        await expect(bell).to_have_attribute("aria-expanded", "true")
        items = inbox.locator(".item")
        await expect(items).to_have_count(2)
        await expect(items.first).to_be_focused()
        await expect(items.first).to_contain_text("Build passed")
        await page.keyboard.press("ArrowDown")
        await expect(items.nth(1)).to_be_focused()
        await expect(items.nth(1)).to_have_attribute("tabindex", "0")
        await expect(items.first).to_have_attribute("tabindex", "-1")
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await expect(bell).to_be_focused()
        await page.keyboard.press("Enter")

        # live arrival: list, badge and the polite announcement
        published = await live.publish("quinn", "Li Wei mentioned you", category="comments")
        await expect(items).to_have_count(3, timeout=WAIT_MS)
        await expect(items.first).to_contain_text("Li Wei mentioned you")
        await expect(badge).to_have_text("3")
        announce = inbox.locator(".announce")
        await expect(announce).to_have_attribute("aria-live", "polite")
        await expect(announce).to_have_text("New notification: Li Wei mentioned you",
                                            timeout=WAIT_MS)
        assert (await created_log(page))[-1][1] == published.body["position"]

        # actions: Enter on an item marks it read, archive moves it, mark all read
        await items.first.focus()
        await page.keyboard.press("Enter")
        await expect(badge).to_have_text("2", timeout=WAIT_MS)
        await expect(items.first).not_to_have_class("item unread")
        target = items.filter(has_text="Invoice ready")
        await target.locator("[data-action=archive]").click()
        await expect(items).to_have_count(3)  # still in "All", now archived
        tabs = inbox.locator("[role=tab]")
        await expect(tabs).to_have_text(["All", "Unread", "Archived"])
        await tabs.nth(2).click()
        await expect(tabs.nth(2)).to_have_attribute("aria-selected", "true")
        await expect(items).to_have_count(1, timeout=WAIT_MS)
        await expect(items.first).to_contain_text("Invoice ready")
        await page.keyboard.press("ArrowLeft")  # tabs move with arrows
        await expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
        await expect(tabs.nth(1)).to_be_focused()
        await inbox.locator(".mark-all").click()
        await expect(badge).to_be_hidden(timeout=WAIT_MS)
        await expect(bell).to_have_attribute("aria-label", "Notifications")
        assert await live.get("/v1/users/quinn/unread_count") is not None

        # theming: custom properties on the element reach the shadow tree
        await page.evaluate("document.querySelector('#inbox').style.setProperty("
                            "'--herald-accent', 'rgb(1, 2, 3)')")
        selected = inbox.locator("[role=tab][aria-selected=true]")
        assert await selected.evaluate("(e) => getComputedStyle(e).color") == "rgb(1, 2, 3)"
        assert page.errors == []


async def test_chinese_strings(browser: Any, live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with embedding("rui") as site, running_live(
            live_settings.replace(cors_origins=(site.url,))) as live:
        await live.publish("rui", "订单已发货")
        page = await open_page(browser, site, live.url, lang="zh-CN", mode="inline")
        inbox = page.locator("#inbox")
        await expect(inbox.locator(".heading")).to_have_text("通知")
        await expect(inbox.locator(".state")).to_have_text("实时", timeout=WAIT_MS)
        await expect(inbox.locator("[role=tab]")).to_have_text(["全部", "未读", "已归档"])
        await expect(inbox.locator(".bell")).to_have_attribute("aria-label", "通知，1 条未读")
        await expect(inbox.locator(".mark-all")).to_have_text("全部标为已读")
        await expect(inbox.locator(".item")).to_contain_text("订单已发货")
        await expect(inbox.locator("[data-action=read]")).to_have_attribute("aria-label",
                                                                             "标为已读")


async def test_resume_without_gaps_or_repeats_after_forced_disconnects(
        browser: Any, live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with embedding("sam") as site, running_live(
            live_settings.replace(cors_origins=(site.url,))) as live:
        page = await open_page(browser, site, live.url, mode="inline")
        inbox = page.locator("#inbox")
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        published = []
        for burst in range(4):
            if burst % 2 == 0:
                assert drop_streams(live) >= 1  # the server closes the stream
            else:
                await page.evaluate("document.querySelector('#inbox').reconnect()")
            for n in range(3):  # published while the client is reconnecting
                answer = await live.publish("sam", f"b{burst} n{n}")
                published.append((answer.body["id"], answer.body["position"]))
            await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS * 2)
        items = inbox.locator(".item")
        await expect(items).to_have_count(12, timeout=WAIT_MS * 2)
        await expect(inbox.locator(".badge")).to_have_text("12")
        got = await created_log(page)
        assert got == published  # every one, once, in log order
        ids = await items.evaluate_all("(rows) => rows.map((r) => r.dataset.id)")
        assert sorted(ids) == sorted(i for i, _ in published) and len(set(ids)) == 12
        assert page.errors == []


async def test_reconnect_after_the_api_restarts(browser: Any, live_settings: Settings,
                                                redis: Any) -> None:
    from playwright.async_api import expect

    async with embedding("tao") as site:
        settings = live_settings.replace(cors_origins=(site.url,))
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        serving = await serve(create_app(settings, modules=LIVE_MODULES), "127.0.0.1", port)
        producer = Producer(redis, settings)
        await producer.start()
        try:
            first = await producer.publish(producer.envelope(
                "tao", NotificationCreated(title="before")))
            page = await open_page(browser, site, api, mode="inline")
            inbox = page.locator("#inbox")
            items = inbox.locator(".item")
            await expect(items).to_have_count(1, timeout=WAIT_MS)
            await serving.stop()  # the API goes away (its streams get `close`)
            await expect(inbox).not_to_have_attribute("state", "live", timeout=WAIT_MS)
            missed = [await producer.publish(producer.envelope(
                "tao", NotificationCreated(title=f"while down {n}"))) for n in range(3)]
            await page.wait_for_timeout(1500)
            serving = await serve(create_app(settings, modules=LIVE_MODULES), "127.0.0.1", port)
            await expect(inbox).to_have_attribute("state", "live", timeout=20_000)
            await expect(items).to_have_count(4, timeout=WAIT_MS)
            await expect(items.first).to_contain_text("while down 2")
            got = await created_log(page)
            assert got == [(a.id, a.position) for a in missed]
            assert first.position not in [p for _, p in got]
            states = await page.evaluate("window.states")
            assert "offline" in states or "reconnecting" in states
            assert page.errors == []
        finally:
            await serving.stop()


async def test_token_refresh_when_the_token_expires(browser: Any,
                                                    live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with embedding("uma", short_ttl=2) as site, running_live(
            live_settings.replace(cors_origins=(site.url,))) as live:
        page = await open_page(browser, site, live.url, mode="inline")
        inbox = page.locator("#inbox")
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        await page.wait_for_function("window.tokenCalls.includes(true)", timeout=10_000)
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        await live.publish("uma", "after the refresh")
        await expect(inbox.locator(".item")).to_have_count(1, timeout=WAIT_MS)
        calls = await page.evaluate("window.tokenCalls")
        assert calls[0] is False and True in calls
        closes = await page.evaluate("window.states")
        assert closes.count("live") >= 2  # it came back after the token_expired close


async def test_long_poll_when_there_is_no_event_source(browser: Any,
                                                       live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with embedding("vic") as site, running_live(
            live_settings.replace(cors_origins=(site.url,))) as live:
        await live.publish("vic", "already there")
        page = await open_page(browser, site, live.url, mode="inline", no_eventsource="1")
        inbox = page.locator("#inbox")
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        assert await page.evaluate("document.querySelector('#inbox')._feed.transport") \
            == "longpoll"
        items = inbox.locator(".item")
        await expect(items).to_have_count(1, timeout=WAIT_MS)
        published = [await live.publish("vic", f"polled {n}") for n in range(3)]
        await expect(items).to_have_count(4, timeout=WAIT_MS)
        await expect(inbox.locator(".badge")).to_have_text("4")
        got = await created_log(page)
        assert got == [(a.body["id"], a.body["position"]) for a in published]
        assert page.errors == []
