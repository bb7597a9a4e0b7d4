"""Small real servers on 127.0.0.1 that stand in for providers.

- ``webhook_receiver``: an aiohttp endpoint that verifies Standard Webhooks
  signatures with its own implementation of the spec (not Herald's);
- ``twilio``: a Twilio-shaped Messages API (basic auth, form fields, JSON errors);
- ``wechat``: a WeChat-shaped API (``/cgi-bin/token``, subscribe send) that
  issues tokens and can expire them;
- ``smtp_server``: an aiosmtpd server keeping what it receives.

Each can be told what to answer next (``script``), and records what it got.
Scripted delays end when the test ends, so no server waits out a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from herald.provider_fakes import Fakes, provider_settings, serve_fakes
from herald.streams.settings import Settings

# Raw key of the endpoint secret used by the receiver (whsec_ + base64 of it).
WEBHOOK_KEY = b"herald-test-webhook-secret-0123456789"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
TOLERANCE_S = 300


@dataclass
class Reply:
    """What a fake server answers to the next request."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    verified: bool = False


class FakeServer:
    """Base: a queue of scripted replies, a log of requests, a stop event."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.url = ""
        self.stopping = asyncio.Event()

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def reply(self, default: Reply) -> web.Response:
        reply = self.replies.pop(0) if self.replies else default
        if reply.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), reply.delay_s)
        body = orjson.dumps(reply.json) if reply.json is not None else b""
        return web.Response(
            status=reply.status,
            body=body,
            headers=reply.headers,
            content_type="application/json",
        )


async def serve(app: web.Application, server: FakeServer) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    try:
        yield server.url
    finally:
        server.stopping.set()
        await runner.cleanup()


# ------------------------------------------------------------------ webhook


def spec_verify(headers: dict[str, str], body: bytes, key: bytes) -> bool:
    """Verify as the Standard Webhooks spec says, independently of Herald's code."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers.get("webhook-signature", "").split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


class WebhookReceiver(FakeServer):
    key = WEBHOOK_KEY
    secret = WEBHOOK_SECRET

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = spec_verify(headers, body, self.key)
        self.received.append(Received(headers=headers, body=body, verified=verified))
        return await self.reply(Reply(200, {"ok": True}))

    async def moved(self, request: web.Request) -> web.Response:
        return await self.reply(Reply(301, headers={"Location": "/hook"}))


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    app.router.add_post("/moved", receiver.moved)
    async for _ in serve(app, receiver):
        yield receiver


# ------------------------------------------------------------------ Twilio


class FakeTwilio(FakeServer):
    sid = "AC" + "0" * 32
    token = "twilio-test-auth-token"
    sender = "+15005550006"

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        form = dict(await request.post())
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(headers=headers, body=body, form=form))  # type: ignore[arg-type]
        expected = "Basic " + base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if request.match_info["sid"] != self.sid or headers.get("authorization") != expected:
            error = {"code": 20003, "message": "Authenticate", "status": 401}
            return web.json_response(error, status=401)
        sid = f"SM{next(self._ids):032x}"
        return await self.reply(Reply(201, {"sid": sid, "status": "queued", "body": form["Body"]}))


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", server.handle)
    async for _ in serve(app, server):
        yield server


# ------------------------------------------------------------------ WeChat


class FakeWeChat(FakeServer):
    appid = "wx0123456789abcdef"
    secret = "wechat-test-app-secret"

    def __init__(self) -> None:
        super().__init__()
        self.valid: set[str] = set()
        self.expired: set[str] = set()
        self.token_requests = 0
        self.token_errcode: int | None = None  # answer token fetches with this errcode
        self._ids = itertools.count(1)

    def expire_all(self) -> None:
        self.expired |= self.valid
        self.valid.clear()

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        query = request.query
        if self.token_errcode is not None:
            return web.json_response({"errcode": self.token_errcode, "errmsg": "scripted"})
        if (query.get("grant_type"), query.get("appid"), query.get("secret")) != (
            "client_credential",
            self.appid,
            self.secret,
        ):
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        token = f"token-{self.token_requests}"
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        token = request.query.get("access_token", "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(headers=headers, body=body, query=dict(request.query)))
        if token in self.expired:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self.valid:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        return await self.reply(
            Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})
        )


@pytest.fixture
async def wechat() -> AsyncIterator[FakeWeChat]:
    server = FakeWeChat()
    app = web.Application()
    app.router.add_get("/cgi-bin/token", server.token)
    app.router.add_post("/cgi-bin/message/subscribe/send", server.send)
    async for _ in serve(app, server):
        yield server


# ------------------------------------------------------------------ SMTP


class Mailbox:
    """aiosmtpd handler: keeps messages; refuses scripted recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse: dict[str, str] = {}  # address -> SMTP reply, e.g. "550 no such user"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, mailbox)
    finally:
        controller.stop()


# ------------------------------------------------------------------ settings


# Request timeout of the timeout tests (their servers answer after 5 s).
SHORT_TIMEOUT_S = 0.3


@pytest.fixture
def channel_settings(settings: Settings) -> Settings:
    """Timeouts generous enough for a loaded 2-core machine; plain SMTP."""
    return settings.replace(
        webhook_timeout_s=3.0,
        sms_timeout_s=3.0,
        wechat_timeout_s=3.0,
        smtp_timeout_s=3.0,
        smtp_tls="none",
    )


# ------------------------------------------------------------------ other providers
# The fakes of the providers added with the provider interface live in the package
# (herald.provider_fakes), shared with scripts/bench_channels.py.


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with serve_fakes() as served:
        yield served


def provider_config(settings: Settings, fakes: Fakes, **changes: object) -> Settings:
    """``settings`` pointing every provider at its fake, plus ``changes``."""
    return settings.replace(**{**provider_settings(fakes), "push_timeout_s": 3.0, **changes})
