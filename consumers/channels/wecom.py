"""WeCom (企业微信) application messages: the ``wecom`` provider of ``wechat``.

``POST {base}/cgi-bin/message/send?access_token=…`` with JSON ``{"touser": userid,
"msgtype": "text", "agentid", "text": {"content"}, "enable_duplicate_check": 1,
"duplicate_check_interval": 1800}``; the answer is ``{"errcode", "errmsg", "msgid",
"invaliduser", …}`` and errcode 0 (with the user not listed as invalid) is sent.
WeCom's duplicate check drops a repeat of the same content to the same user within
30 minutes, so a retry after a lost answer does not reach the user twice.

The recipient is the user's WeCom userid (profile field ``wecom_userid``). The access
token comes from ``GET {base}/cgi-bin/gettoken?corpid=…&corpsecret=…``
(HERALD_WECOM_CORP_ID / HERALD_WECOM_SECRET, the app's secret), shared by every worker
through Redis (consumers/channels/tokens.py): fetched once, dropped and fetched again
on 40014 / 42001 / 41001, and the send retried once.

Content: a template's ``wechat`` variant ``{"msgtype": "textcard", "title",
"description", "url", "btntxt"}`` or ``{"msgtype": "markdown", "content"}`` or
``{"text": …}``; without one, a text message of the title and body.

Errors: -1 (busy), 45009 (API rate), 45033 (concurrency), 45047 retry with back-off;
40003 / 60111 (no such user), 81013 (every recipient invalid), 40056 (invalid
agentid), 60020 (server IP not allowed) and anything unknown fail with the errcode.
"""

from __future__ import annotations

from typing import Any

import orjson

from herald.consumers.channels.base import (
    TRANSPORT_ERRORS,
    HttpSession,
    OutboundMessage,
    SendResult,
    error_detail,
)
from herald.consumers.channels.tokens import SharedToken, TokenUnavailable
from herald.consumers.channels.wechat import WeChatChannel
from herald.consumers.channels.wechat_token import parse_token_answer
from herald.streams.keys import Keys
from herald.streams.settings import Settings

TOKEN_ERRCODES = frozenset({40014, 42001, 41001})
RETRY_ERRCODES: dict[int, str] = {-1: "system busy", 45009: "API rate limit",
                                  45033: "too many concurrent calls",
                                  45047: "too many messages"}
PERMANENT_ERRCODES: dict[int, str] = {
    40003: "invalid userid",
    60111: "userid not found",
    81013: "every recipient is invalid",
    40056: "invalid agentid",
    60020: "this server's IP is not allowed",
    301002: "no permission for this user",
}
MAX_TEXT_CHARS = 2000  # WeCom's text limit is 2048 bytes; CJK text is 3 bytes a character
DUPLICATE_CHECK_S = 1800


class WeComChannel(WeChatChannel):
    """Application messages to WeCom users with a Redis-shared access token."""

    provider = "wecom"
    contact = "wecom_userid"
    path = "/cgi-bin/message/send"
    token_errcodes = TOKEN_ERRCODES

    def __init__(self, settings: Settings, redis: Any) -> None:
        self._settings = settings
        self._http = HttpSession(settings.wechat_timeout_s, settings.delivery_concurrency)
        keys = Keys(settings.prefix)
        account = f"{settings.wecom_corp_id}:{settings.wecom_agent_id}"
        self.tokens = SharedToken(redis, keys.provider_token("wecom", account),
                                  keys.provider_token_lock("wecom", account),
                                  settings.wechat_timeout_s, self._fetch_token)
        self._base = settings.wecom_base_url.rstrip("/")
        self._url = self._base + self.path

    async def _fetch_token(self) -> tuple[str, float]:
        params = {"corpid": self._settings.wecom_corp_id,
                  "corpsecret": self._settings.wecom_secret}
        try:
            async with self._http.get().get(self._base + "/cgi-bin/gettoken",
                                            params=params) as response:
                status = response.status
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:  # the message never names the secret
            raise TokenUnavailable(
                SendResult.retry(f"access token fetch: {error_detail(exc)}")) from exc
        return parse_token_answer(status, raw)

    def request_body(self, message: OutboundMessage) -> dict[str, Any] | None:
        variant = dict(message.variant)
        msgtype = str(variant.pop("msgtype", "text"))
        body: dict[str, Any] = {
            "touser": message.recipient.address,
            "agentid": int(self._settings.wecom_agent_id),
            "enable_duplicate_check": 1,
            "duplicate_check_interval": DUPLICATE_CHECK_S,
        }
        if msgtype == "textcard":
            body["msgtype"] = "textcard"
            body["textcard"] = {"title": str(variant.get("title") or message.title),
                                "description": str(variant.get("description")
                                                   or message.body or message.title),
                                "url": str(variant.get("url") or "https://work.weixin.qq.com"),
                                "btntxt": str(variant.get("btntxt") or "")}
        elif msgtype == "markdown":
            body["msgtype"] = "markdown"
            body["markdown"] = {"content": _clip(str(variant.get("content") or message.title))}
        else:
            text = variant.get("text") or (f"{message.title}\n{message.body}" if message.body
                                           else message.title)
            body["msgtype"] = "text"
            body["text"] = {"content": _clip(str(text))}
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        settings = self._settings
        if not (settings.wecom_corp_id and settings.wecom_secret and settings.wecom_agent_id):
            return SendResult.failed(
                "WeCom is not configured (HERALD_WECOM_CORP_ID/_SECRET/_AGENT_ID)")
        document = self.request_body(message)
        assert document is not None
        return await self.post_with_token(orjson.dumps(document))

    def classify(self, errcode: int, errmsg: str, answer: dict[str, Any]) -> SendResult:
        invalid = str(answer.get("invaliduser") or "")
        if errcode == 0 and not invalid:
            msgid = answer.get("msgid")
            return SendResult.sent(str(msgid) if msgid is not None else None, code=0)
        if errcode == 0:
            return SendResult.failed(f"errcode 0 but the user is invalid ({invalid})",
                                     code=81013)
        if errcode in RETRY_ERRCODES:
            return SendResult.retry(
                f"errcode {errcode} ({RETRY_ERRCODES[errcode]}): {errmsg}", code=errcode)
        known = PERMANENT_ERRCODES.get(errcode, "rejected")
        return SendResult.failed(f"errcode {errcode} ({known}): {errmsg}", code=errcode)


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TEXT_CHARS else value[: MAX_TEXT_CHARS - 1] + "…"
