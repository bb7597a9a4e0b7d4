"""The web pages: ``/`` (demo inbox), ``/admin`` (operator page), their static files,
and the development-only helpers the demo page uses.

No build step: plain HTML, CSS and JavaScript files in api/pages/, read once when
the routes are made and served from memory with an ETag (a 304 answers a matching
``If-None-Match``). The inbox page is a user of the ``<herald-inbox>`` element
(api/routes_client.py): it only finds a user token; the operator page asks for a
service key and polls ``/v1/admin/status``.

Development only (``HERALD_DEV=true``, never in production): ``POST /v1/dev/token``
mints a user token for any user without credentials, so the demo page can "pick a
user"; ``POST /v1/dev/users/{user}/sample`` publishes a sample notification to the
caller's own inbox. Without dev mode neither route exists and the inbox page asks
for a token (``herald token USER``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from herald.api.appending import append
from herald.api.auth import minted_for, valid_user
from herald.api.errors import Unprocessable, field_error
from herald.api.hardening import PAGE_POLICY
from herald.api.jsonio import json_response
from herald.api.routes_inbox import USER_PARAM
from herald.api.routing import Call, Param, Reply, Route
from herald.api.schemas import USER
from herald.streams.errors import ValidationError
from herald.streams.events import NotificationCreated
from herald.streams.settings import Settings

PAGES_DIR = Path(__file__).resolve().parent / "pages"
STATIC = {"app.js": "text/javascript", "admin.js": "text/javascript",
          "i18n.js": "text/javascript", "style.css": "text/css",
          "favicon.svg": "image/svg+xml"}
DEV_TOKEN_TTL_S = 3600.0
SAMPLES = (
    ("billing", "Invoice #2041 is ready", "Your March invoice ($48.00) is available to download."),
    ("security", "New sign-in from Chrome on macOS", "If this wasn't you, reset your password."),
    ("comments", "Li Wei mentioned you", "“Can you review the rollout plan before Friday?”"),
    ("orders", "订单已发货", "您的订单 #88231 已由顺丰速运发出，预计明天送达。"),
    ("system", "系统维护通知", "本周六 02:00–04:00 进行例行维护，期间服务可能短暂中断。"),
    ("team", "王芳 邀请你加入「产品设计」", "点击查看项目并接受邀请。"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def asset(name: str, content_type: str, replace: dict[str, str] | None = None) -> Asset:
    """A file of api/pages/ read into memory with its ETag (``replace``: text swaps)."""
    text = (PAGES_DIR / name).read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    body = text.encode()
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


def serve_asset(request: web.Request, served: Asset) -> web.Response:
    """The asset, or 304 when ``If-None-Match`` names its ETag."""
    headers = {"ETag": served.etag, "Cache-Control": "no-cache",
               "X-Content-Type-Options": "nosniff"}
    if served.content_type == "text/html":  # a 304 must not swap a page's policy
        headers["Content-Security-Policy"] = PAGE_POLICY
    if request.headers.get("If-None-Match") == served.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=served.body, headers=headers,
                        content_type=served.content_type, charset="utf-8")


def routes(settings: Settings) -> list[Route]:
    dev = "true" if settings.dev_mode else "false"
    index = asset("index.html", "text/html", {"{{DEV_MODE}}": dev})
    admin = asset("admin.html", "text/html")
    static = {name: asset(name, kind) for name, kind in STATIC.items()}

    def static_file(served: Asset) -> Callable[[Call], Awaitable[web.Response]]:
        async def handler(call: Call) -> web.Response:
            return serve_asset(call.request, served)

        return handler

    html = {200: Reply("The page (HTML).", None, "text/html")}
    pages = "pages"
    out = [
        Route("GET", "/", static_file(index), "page_inbox", "Demo inbox page", pages, "none", html,
              description="A demo inbox built on the <herald-inbox> element (/v1/inbox.js): "
                          "bell with unread badge, list, mark read, archive, live with "
                          "resume. Needs a user token (or HERALD_DEV)."),
        Route("GET", "/admin", static_file(admin), "page_admin", "Operator page", pages, "none",
              html,
              description="Partitions, owners, checkpoints, lag, pending, dead letters, "
                          "throughput and live connections; asks for a service key."),
    ]
    for name, served in static.items():
        stem = name.replace(".", "_")
        out.append(Route("GET", f"/static/{name}", static_file(served), f"page_static_{stem}",
                         f"Page asset {name}", pages, "none",
                         {200: Reply(f"{name} ({served.content_type}).", None,
                                     served.content_type)}))
    if settings.dev_mode:
        out += dev_routes()
    return out


async def dev_token(call: Call) -> web.Response:
    user = call.query["user"]
    try:
        valid_user(user, "query.user")
    except ValidationError as exc:
        raise Unprocessable(str(exc), errors=[field_error(exc.field, exc.message)]) from exc
    token = minted_for(call.settings, user, DEV_TOKEN_TTL_S)
    return json_response({"user": user, "token": token, "expires_in": int(DEV_TOKEN_TTL_S)})


async def dev_sample(call: Call) -> web.Response:
    category, title, body = random.choice(SAMPLES)
    appended = await append(call.app, call.owner,
                            NotificationCreated(title=title, body=body, category=category))
    return json_response({"id": appended.id, "position": appended.position}, 201)


def dev_routes() -> list[Route]:
    dev = "development"
    note = "Only with HERALD_DEV=true (development); absent otherwise."
    return [
        Route("POST", "/v1/dev/token", dev_token, "dev_token",
              "Mint a user token (development only)", dev, "none",
              {200: Reply("A user token for `user`, valid one hour.", "DevToken")},
              params=(Param("user", "query", USER, True, "The user to mint a token for."),),
              description=note + " Anyone who can reach the API can act as any user."),
        Route("POST", "/v1/dev/users/{user}/sample", dev_sample, "dev_sample",
              "Publish a sample notification to yourself (development only)", dev, "user",
              {201: Reply("Appended: id and position.", "SampleSent")}, params=(USER_PARAM,),
              description=note),
    ]


def schemas(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        "DevToken": {"type": "object", "required": ["user", "token", "expires_in"],
                     "properties": {"user": {"type": "string"}, "token": {"type": "string"},
                                    "expires_in": {"type": "integer"}}},
        "SampleSent": {"type": "object", "required": ["id", "position"],
                       "properties": {"id": {"type": "string"}, "position": {"type": "string"}}},
    }
