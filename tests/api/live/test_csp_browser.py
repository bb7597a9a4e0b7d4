"""No Content-Security-Policy violation in a real Chromium: the demo inbox (``/``), the
operator page (``/admin``) under Herald's own policy, and ``<herald-inbox>`` embedded by a
product page whose policy is as strict (no inline script or style, only the API's origin
for scripts and connections). Every page also refuses to be framed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from herald.api.auth import mint_token
from herald.api.server import serve
from herald.streams.settings import Settings
from tests.api.conftest import SECRET, SERVICE_KEY
from tests.api.live.conftest import WAIT_MS, running_live

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("projector")]

WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"""
PRODUCT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>a product</title>
<link rel="stylesheet" href="/product.css"></head>
<body><header><h1>My product</h1><span id="slot"></span></header>
<script type="module" src="/embed.js"></script></body></html>"""
EMBED = """const api = new URLSearchParams(location.search).get("api");
await import(`${api}/v1/inbox.js`);
const el = document.createElement("herald-inbox");
el.id = "inbox";
el.setAttribute("base-url", api);
el.setAttribute("mode", "inline");
el.tokenProvider = async () => (await fetch("/token")).text();
document.getElementById("slot").append(el);"""


async def open_watched(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = await browser.new_page(viewport={"width": 1100, "height": 800}, locale="en-US")
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.on("pageerror", lambda exc: console.append(f"pageerror {exc}"))
    await page.add_init_script(WATCH)
    await page.goto(url)
    return page, console


async def violations(page: Any, console: list[str]) -> list[str]:
    seen = list(await page.evaluate("window.__csp"))
    return seen + [m for m in console if "Content Security Policy" in m or "pageerror" in m]


@contextlib.asynccontextmanager
async def product_site() -> AsyncIterator[str]:
    """A product's origin with a strict policy naming the API's origin (``?api=``)."""

    def policy(api: str) -> str:
        return (f"default-src 'none'; script-src 'self' {api}; style-src 'self'; "
                f"connect-src 'self' {api}; img-src 'self' data:; base-uri 'none'; "
                "frame-ancestors 'none'")

    def page(body: str, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=body, content_type=kind, headers={
                "Content-Security-Policy": policy(request.query.get("api", ""))})
        return handler

    async def token(request: web.Request) -> web.Response:
        return web.Response(text=mint_token(SECRET, "casey", 3600))

    app = web.Application()
    app.router.add_get("/", page(PRODUCT, "text/html"))
    app.router.add_get("/embed.js", page(EMBED, "text/javascript"))
    app.router.add_get("/product.css", page("h1 { font: 600 18px sans-serif; }", "text/css"))
    app.router.add_get("/token", token)
    serving = await serve(app, "127.0.0.1", 0)
    try:
        yield serving.url
    finally:
        await serving.stop()


async def test_demo_and_operator_pages_load_without_a_csp_violation(
        browser: Any, live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with running_live(live_settings.replace(dev_mode=True)) as live:
        await live.publish("pat", "Welcome", body="under a strict policy")
        page, console = await open_watched(browser, f"{live.url}/?user=pat")
        inbox = page.locator("#inbox")
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        await expect(inbox.locator(".item")).to_have_count(1, timeout=WAIT_MS)
        await page.locator("#dev-sample").click()
        await expect(inbox.locator(".item")).to_have_count(2, timeout=WAIT_MS)
        accent = await page.evaluate("getComputedStyle(document.querySelector('#inbox'))"
                                     ".getPropertyValue('--_accent').trim()")
        assert accent, "the element's style sheet did not apply"
        assert await violations(page, console) == []

        admin, console = await open_watched(browser, f"{live.url}/admin")
        await admin.locator("#key").fill(SERVICE_KEY)
        await admin.locator("#key-form button").click()
        await expect(admin.locator("#cards .card").first).to_be_visible(timeout=WAIT_MS)
        assert await violations(admin, console) == []

        # a page of another origin cannot frame the operator page (clickjacking)
        framer, console = await open_watched(browser, "about:blank")
        await framer.set_content(f'<iframe src="{live.url}/admin"></iframe>')
        child = framer.main_frame.child_frames
        for _ in range(50):
            if child and child[0].url != "about:blank":
                break
            await framer.wait_for_timeout(100)
            child = framer.main_frame.child_frames
        assert child and child[0].url.startswith("chrome-error:"), [f.url for f in child]
        assert await child[0].locator("#key").count() == 0


async def test_the_element_on_a_strict_product_page_has_no_csp_violation(
        browser: Any, live_settings: Settings) -> None:
    from playwright.async_api import expect

    async with product_site() as site, \
            running_live(live_settings.replace(cors_origins=(site,))) as live:
        await live.publish("casey", "Embedded", body="no inline style needed")
        page, console = await open_watched(browser, f"{site}/?api={live.url}")
        inbox = page.locator("#inbox")
        await expect(inbox).to_have_attribute("state", "live", timeout=WAIT_MS)
        await expect(inbox.locator(".item")).to_have_count(1, timeout=WAIT_MS)
        accent = await page.evaluate("getComputedStyle(document.querySelector('#inbox'))"
                                     ".getPropertyValue('--_accent').trim()")
        assert accent, "the element's style sheet did not apply"
        assert await violations(page, console) == []
