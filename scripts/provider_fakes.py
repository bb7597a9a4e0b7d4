"""Small real servers on 127.0.0.1 that stand in for the providers (tests and benchmarks).

Each checks requests the way its provider documents it, with its own code (not
Herald's): Alibaba Cloud's ACS3-HMAC-SHA256 and Tencent Cloud's TC3-HMAC-SHA256
signatures, WeChat / WeCom access tokens, Google's OAuth2 service-account assertion
(RS256, verified with the account's public key), APNs provider tokens (ES256, over a
real HTTP/2 connection). A request that fails the check is answered the way the
provider answers it and recorded with ``verified=False``.

Every fake: ``script(Reply(...))`` queues what the next requests get, ``received``
lists what came (``Received``), ``token_requests`` counts token fetches, ``stop()``
ends scripted delays. :func:`serve_fakes` runs them all in one aiohttp runner (plus
the HTTP/2 server for APNs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass
class Reply:
    """What a fake answers to the next request (``json`` None: its success answer)."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    verified: bool = False
    at: float = 0.0  # time.monotonic() on arrival

    def json(self) -> Any:
        return orjson.loads(self.body)


class Fake:
    """Scripted replies, a log of requests, a stop event."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.token_requests = 0
        self.url = ""
        self.stopping = asyncio.Event()
        self._ids = itertools.count(1)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def stop(self) -> None:
        self.stopping.set()

    def next_id(self) -> int:
        return next(self._ids)

    def record(self, request: web.Request, body: bytes, verified: bool) -> Received:
        got = Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body,
                       dict(request.query), verified, time.monotonic())
        self.received.append(got)
        return got

    async def answer(self, success: Any, status: int = 200) -> web.Response:
        reply = self.replies.pop(0) if self.replies else Reply(status)
        if reply.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), reply.delay_s)
        document = success if reply.json is None else reply.json
        return web.Response(status=reply.status, body=orjson.dumps(document),
                            headers=reply.headers, content_type="application/json")

    @property
    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ Alibaba Cloud


def _rfc3986(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


class FakeAliyun(Fake):
    """``POST /`` SendSms, V3-signed (ACS3-HMAC-SHA256), parameters in the query."""

    key_id = "LTAI5tHeraldTestKeyId"
    secret = "herald-test-aliyun-access-key-secret"

    def verify(self, request: web.Request, body: bytes) -> str | None:
        """None when the signature is right, else Alibaba Cloud's error code."""
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        parts = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
        if algorithm != "ACS3-HMAC-SHA256" or parts.get("Credential") != self.key_id:
            return "InvalidAccessKeyId.NotFound"
        signed = parts.get("SignedHeaders", "").split(";")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "host" not in signed or not all(h in headers for h in signed) or \
                headers.get("x-acs-content-sha256") != _sha256(body):
            return "IncompleteSignature"
        try:
            when = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return "SignatureDoesNotMatch"
        if abs(when.replace(tzinfo=UTC).timestamp() - time.time()) > 900:
            return "SignatureDoesNotMatch"
        pairs = urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
        query = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(pairs))
        canonical = "\n".join([request.method, request.path, query,
                               "".join(f"{h}:{headers[h].strip()}\n" for h in signed),
                               ";".join(signed), _sha256(body)])
        to_sign = "ACS3-HMAC-SHA256\n" + _sha256(canonical.encode())
        expected = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, parts.get("Signature", "")) else \
            "SignatureDoesNotMatch"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = self.verify(request, body)
        self.record(request, body, problem is None)
        if problem is not None:
            return web.json_response({"Code": problem, "Message": "Specified signature is "
                                      "not matched", "RequestId": "x"}, status=400)
        if request.headers.get("x-acs-action") != "SendSms":
            return web.json_response({"Code": "InvalidAction.NotFound"}, status=404)
        return await self.answer({"Code": "OK", "Message": "OK", "RequestId": "req",
                                  "BizId": f"{self.next_id():08d}^0"})


# ------------------------------------------------------------------ Tencent Cloud


class FakeTencent(Fake):
    """``POST /`` SendSms 2021-01-11, TC3-HMAC-SHA256 signed, JSON body."""

    secret_id = "AKIDheraldTestSecretId"
    secret_key = "herald-test-tencent-secret-key"

    def verify(self, request: web.Request, body: bytes) -> str | None:
        auth = request.headers.get("Authorization", "")
        algorithm, _, rest = auth.partition(" ")
        parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
        credential = parts.get("Credential", "").split("/")
        if algorithm != "TC3-HMAC-SHA256" or len(credential) != 4 or \
                credential[0] != self.secret_id:
            return "AuthFailure.SecretIdNotFound"
        _, date, service, terminator = credential
        timestamp = int(request.headers.get("X-TC-Timestamp", "0"))
        if abs(timestamp - time.time()) > 300:
            return "AuthFailure.SignatureExpire"
        if date != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") or \
                service != "sms" or terminator != "tc3_request":
            return "AuthFailure.SignatureFailure"
        signed = parts.get("SignedHeaders", "").split(";")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not {"content-type", "host"} <= set(signed) or not all(h in headers for h in signed):
            return "AuthFailure.SignatureFailure"
        canonical = "\n".join(["POST", "/", "", "".join(f"{h}:{headers[h].lower()}\n"
                                                       for h in signed),
                               ";".join(signed), _sha256(body)])
        to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
                             _sha256(canonical.encode())])
        key = f"TC3{self.secret_key}".encode()
        for part in (date, service, "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, parts.get("Signature", "")) else \
            "AuthFailure.SignatureFailure"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = self.verify(request, body)
        self.record(request, body, problem is None)
        if problem is not None:
            return web.json_response({"Response": {"Error": {"Code": problem,
                                                             "Message": "signature"},
                                                   "RequestId": "x"}})
        doc = orjson.loads(body)
        entries = [{"SerialNo": f"2640:{self.next_id()}", "PhoneNumber": number, "Fee": 1,
                    "SessionContext": doc.get("SessionContext", ""), "Code": "Ok",
                    "Message": "send success", "IsoCode": "CN"}
                   for number in doc.get("PhoneNumberSet", [])]
        return await self.answer({"Response": {"SendStatusSet": entries, "RequestId": "r"}})


# ------------------------------------------------------------------ WeChat, WeCom


class FakeWeChat(Fake):
    """WeChat's API: ``/cgi-bin/token`` and the subscribe and Official Account sends;
    tokens can be expired (``expire_all``)."""

    appid = "wx0123456789abcdef"
    secret = "wechat-test-app-secret"

    def __init__(self) -> None:
        super().__init__()
        self.valid: set[str] = set()
        self.expired: set[str] = set()
        self.seen_client_msg_ids: set[str] = set()

    def expire_all(self) -> None:
        self.expired |= self.valid
        self.valid.clear()

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        q = request.query
        if (q.get("grant_type"), q.get("appid"), q.get("secret")) != (
                "client_credential", self.appid, self.secret):
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        await asyncio.sleep(0.05)  # a fetch takes a while: concurrent workers would overlap
        token = f"token-{self.token_requests}"
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        token = request.query.get("access_token", "")
        got = self.record(request, body, token in self.valid)
        if token in self.expired:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self.valid:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        client_msg_id = got.json().get("client_msg_id")
        if client_msg_id and client_msg_id in self.seen_client_msg_ids:  # sent already
            return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": 0})
        scripted = self.replies[0].json if self.replies else None
        if client_msg_id and (scripted is None or scripted.get("errcode") == 0):
            self.seen_client_msg_ids.add(client_msg_id)
        return await self.answer({"errcode": 0, "errmsg": "ok", "msgid": self.next_id()})


class FakeWeCom(Fake):
    """WeCom's API: ``/cgi-bin/gettoken`` and ``/cgi-bin/message/send``."""

    corp_id = "ww0123456789abcdef"
    secret = "wecom-test-app-secret"
    agent_id = "1000002"

    def __init__(self) -> None:
        super().__init__()
        self.valid: set[str] = set()
        self.expired: set[str] = set()

    def expire_all(self) -> None:
        self.expired |= self.valid
        self.valid.clear()

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if (request.query.get("corpid"), request.query.get("corpsecret")) != (self.corp_id,
                                                                              self.secret):
            return web.json_response({"errcode": 40001, "errmsg": "invalid secret"})
        await asyncio.sleep(0.05)
        token = f"wecom-{self.token_requests}"
        self.valid.add(token)
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token,
                                  "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        token = request.query.get("access_token", "")
        self.record(request, body, token in self.valid)
        if token in self.expired:
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self.valid:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        doc = orjson.loads(body)
        if str(doc.get("agentid")) != self.agent_id:
            return web.json_response({"errcode": 40056, "errmsg": "invalid agentid"})
        return await self.answer({"errcode": 0, "errmsg": "ok", "invaliduser": "",
                                  "msgid": f"msg{self.next_id()}"})


# ------------------------------------------------------------------ Firebase


def rsa_service_account(token_uri: str, project: str = "herald-test") -> tuple[dict[str, Any],
                                                                                 Any]:
    """A service account JSON (as Google gives it) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    account = {"type": "service_account", "project_id": project, "private_key_id": "k1",
               "private_key": pem, "client_email": f"herald@{project}.iam.gserviceaccount.com",
               "token_uri": token_uri}
    return account, key.public_key()


class FakeFcm(Fake):
    """Google's token endpoint (``/token``: the RS256 assertion checked with the service
    account's public key) and FCM's ``/v1/projects/{p}/messages:send``."""

    scope = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(self) -> None:
        super().__init__()
        self.public_key: Any = None
        self.account: dict[str, Any] = {}
        self.valid: set[str] = set()
        self.expired: set[str] = set()

    def make_account(self) -> dict[str, Any]:
        self.account, self.public_key = rsa_service_account(f"{self.url}/token")
        return self.account

    def expire_all(self) -> None:
        self.expired |= self.valid
        self.valid.clear()

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(str(form.get("assertion", "")), self.public_key,
                                algorithms=["RS256"], audience=f"{self.url}/token")
            header = jwt.get_unverified_header(str(form.get("assertion", "")))
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)},
                                     status=400)
        if claims.get("iss") != self.account["client_email"] or claims.get("scope") != \
                self.scope or claims["exp"] - claims["iat"] > 3600 or header.get("kid") != \
                self.account["private_key_id"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        await asyncio.sleep(0.05)
        token = f"ya29.fcm-{self.token_requests}"
        self.valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599,
                                  "token_type": "Bearer"})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.read()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        project = request.match_info["project"]
        got = self.record(request, body, token in self.valid and
                          project == self.account.get("project_id"))
        if token not in self.valid:
            return web.json_response({"error": {"code": 401, "message": "Request had invalid "
                                      "authentication credentials.",
                                      "status": "UNAUTHENTICATED"}}, status=401)
        target = got.json()["message"]["token"]
        return await self.answer({"name": f"projects/{project}/messages/0:{self.next_id()}"
                                  f"%{target[:6]}"})


def fcm_error(status: int, code: str, message: str = "scripted") -> Reply:
    """An FCM error answer as FCM writes it."""
    canonical = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 403: "PERMISSION_DENIED",
                 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 500: "INTERNAL"}
    return Reply(status, {"error": {"code": status, "message": message,
                                    "status": canonical.get(status, "UNKNOWN"),
                                    "details": [{"@type": "type.googleapis.com/google.firebase."
                                                 "fcm.v1.FcmError", "errorCode": code}]}})


# ------------------------------------------------------------------ APNs (HTTP/2)


def ec_key() -> tuple[str, Any]:
    """A P-256 key as the .p8 PEM Apple gives, and its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


class FakeApns(Fake):
    """APNs over HTTP/2 (cleartext, prior knowledge): ``POST /3/device/<token>`` with a
    provider token (ES256 JWT: ``kid``, ``iss`` = team, ``iat`` within the hour)."""

    team_id = "HRLDTEAM01"
    key_id = "HRLDKEY001"
    topic = "com.example.herald"

    def __init__(self) -> None:
        super().__init__()
        self.pem, self.public_key = ec_key()
        self.tokens_seen: set[str] = set()
        self.expired: set[str] = set()  # provider tokens answered ExpiredProviderToken
        self.unregistered: set[str] = set()  # device tokens answered 410 Unregistered

    def check(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return "MissingProviderToken"
        token = auth.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"],
                                options={"verify_aud": False})
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
            return "InvalidProviderToken"
        if token in self.expired or time.time() - float(claims.get("iat", 0)) > 3600:
            return "ExpiredProviderToken"
        self.tokens_seen.add(token)
        return None

    async def handle(self, path: str, headers: dict[str, str], body: bytes
                     ) -> tuple[int, dict[str, str], bytes]:
        problem = self.check(headers)
        got = Received(path, headers, body, verified=problem is None, at=time.monotonic())
        self.received.append(got)
        if problem is not None:
            return 403, {}, orjson.dumps({"reason": problem})
        if not path.startswith("/3/device/") or headers.get(":method") != "POST":
            return 404, {}, orjson.dumps({"reason": "BadPath"})
        if headers.get("apns-topic") != self.topic:
            return 400, {}, orjson.dumps({"reason": "DeviceTokenNotForTopic"})
        if path.rsplit("/", 1)[1] in self.unregistered:
            return 410, {}, orjson.dumps({"reason": "Unregistered",
                                          "timestamp": int(time.time() * 1000)})
        reply = self.replies.pop(0) if self.replies else Reply(200)
        if reply.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), reply.delay_s)
        out = {"apns-id": headers.get("apns-id", "")} if reply.status == 200 else {}
        out.update(reply.headers)
        payload = b"" if reply.status == 200 else orjson.dumps(reply.json or {})
        return reply.status, out, payload


class H2Server(asyncio.Protocol):
    """A minimal HTTP/2 server (the ``h2`` library) calling ``fake.handle`` per stream."""

    def __init__(self, fake: FakeApns) -> None:
        from h2.config import H2Configuration
        from h2.connection import H2Connection

        self.fake = fake
        self.conn = H2Connection(config=H2Configuration(client_side=False,
                                                        header_encoding="utf-8"))
        self.transport: Any = None
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        import h2.events
        import h2.exceptions

        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.streams[event.stream_id] = (  # str headers: header_encoding is set
                    {str(k): str(v) for k, v in event.headers}, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                self.streams[event.stream_id][1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                task = asyncio.ensure_future(self._respond(event.stream_id))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        self.transport.write(self.conn.data_to_send())

    async def _respond(self, stream_id: int) -> None:
        headers, body = self.streams.pop(stream_id)
        status, extra, payload = await self.fake.handle(headers.get(":path", ""), headers,
                                                        bytes(body))
        if self.transport is None or self.transport.is_closing():
            return
        out = [(":status", str(status)), ("content-length", str(len(payload))),
               *extra.items()]
        self.conn.send_headers(stream_id, out, end_stream=not payload)
        if payload:
            self.conn.send_data(stream_id, payload, end_stream=True)
        self.transport.write(self.conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


# ------------------------------------------------------------------ serving


@dataclass
class Fakes:
    """Every fake, listening on 127.0.0.1 (``apns.url`` is an h2c ``http://`` URL)."""

    aliyun: FakeAliyun
    tencent: FakeTencent
    wechat: FakeWeChat
    wecom: FakeWeCom
    fcm: FakeFcm
    apns: FakeApns

    def all(self) -> list[Fake]:
        return [self.aliyun, self.tencent, self.wechat, self.wecom, self.fcm, self.apns]


def app_of(fakes: Fakes) -> web.Application:
    app = web.Application()
    app.router.add_post("/aliyun/", fakes.aliyun.handle)
    app.router.add_post("/tencent/", fakes.tencent.handle)
    app.router.add_get("/wechat/cgi-bin/token", fakes.wechat.token)
    app.router.add_post("/wechat/cgi-bin/message/subscribe/send", fakes.wechat.send)
    app.router.add_post("/wechat/cgi-bin/message/template/send", fakes.wechat.send)
    app.router.add_get("/wecom/cgi-bin/gettoken", fakes.wecom.token)
    app.router.add_post("/wecom/cgi-bin/message/send", fakes.wecom.send)
    app.router.add_post("/fcm/token", fakes.fcm.token)
    app.router.add_post("/fcm/v1/projects/{project}/messages:send", fakes.fcm.send)
    return app


@contextlib.asynccontextmanager
async def serve_fakes() -> AsyncIterator[Fakes]:
    """Every fake, serving until the block ends; each fake's ``url`` is its base URL."""
    fakes = Fakes(FakeAliyun(), FakeTencent(), FakeWeChat(), FakeWeCom(), FakeFcm(), FakeApns())
    runner = web.AppRunner(app_of(fakes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    for name in ("aliyun", "tencent", "wechat", "wecom", "fcm"):
        getattr(fakes, name).url = f"{base}/{name}"
    loop = asyncio.get_running_loop()
    protocols: list[H2Server] = []

    def factory() -> H2Server:
        protocol = H2Server(fakes.apns)
        protocols.append(protocol)
        return protocol

    h2 = await loop.create_server(factory, "127.0.0.1", 0)
    fakes.apns.url = f"http://127.0.0.1:{h2.sockets[0].getsockname()[1]}"
    fakes.fcm.make_account()
    try:
        yield fakes
    finally:
        for fake in fakes.all():
            fake.stop()
        h2.close()
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        with contextlib.suppress(Exception):
            await h2.wait_closed()
        await runner.cleanup()


def provider_settings(fakes: Fakes) -> dict[str, Any]:
    """Settings that point every provider at its fake (choose providers separately)."""
    return {
        "aliyun_sms_base_url": fakes.aliyun.url,
        "aliyun_access_key_id": FakeAliyun.key_id,
        "aliyun_access_key_secret": FakeAliyun.secret,
        "aliyun_sms_sign_name": "阿里云短信测试",
        "aliyun_sms_template_code": "SMS_154950909",
        "tencent_sms_base_url": fakes.tencent.url,
        "tencent_secret_id": FakeTencent.secret_id,
        "tencent_secret_key": FakeTencent.secret_key,
        "tencent_sms_app_id": "1400006666",
        "tencent_sms_sign_name": "腾讯云",
        "tencent_sms_template_id": "449739",
        "wechat_base_url": fakes.wechat.url,
        "wechat_appid": FakeWeChat.appid,
        "wechat_secret": FakeWeChat.secret,
        "wechat_template_id": "tmpl-order",
        "wecom_base_url": fakes.wecom.url,
        "wecom_corp_id": FakeWeCom.corp_id,
        "wecom_secret": FakeWeCom.secret,
        "wecom_agent_id": FakeWeCom.agent_id,
        "fcm_base_url": fakes.fcm.url,
        "fcm_credentials": json.dumps(fakes.fcm.account),
        "apns_base_url": fakes.apns.url,
        "apns_team_id": FakeApns.team_id,
        "apns_key_id": FakeApns.key_id,
        "apns_private_key": fakes.apns.pem,
        "apns_topic": FakeApns.topic,
    }


def provider_env(fakes: Fakes) -> dict[str, str]:
    """:func:`provider_settings` as HERALD_* variables (for worker processes)."""
    return {f"HERALD_{name.upper()}": str(value)
            for name, value in provider_settings(fakes).items()}

