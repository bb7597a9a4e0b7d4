"""WeChat Official Account (公众号) template messages: the ``official`` provider of ``wechat``.

``POST {base}/cgi-bin/message/template/send?access_token=…`` with JSON
``{"touser": openid, "template_id", "url"?, "miniprogram"?: {"appid", "pagepath"},
"data": {field: {"value": …}}, "client_msg_id"}``; the answer is ``{"errcode",
"errmsg", "msgid"}`` and errcode 0 is sent. ``client_msg_id`` is the delivery's
idempotency key: WeChat drops a repeat of it, so a retry after a lost answer does
not reach the user twice.

The access token is the app's (HERALD_WECHAT_APPID / HERALD_WECHAT_SECRET, the
Official Account's), fetched and shared through Redis exactly as for the mini
program (wechat_token.py): fetched once for all workers, dropped and fetched again
on 40001 / 40014 / 42001, and the send retried once.

Content: a template's ``wechat`` variant ``{"template_id", "fields": {field: value},
"url", "miniprogram": {"appid", "pagepath"}}``; without one, HERALD_WECHAT_TEMPLATE_ID
with the title and body in HERALD_WECHAT_TITLE_FIELD / _BODY_FIELD (set them to your
template's, e.g. ``first`` and ``remark``) and HERALD_WECHAT_PAGE as the ``url`` when
it is a web address.

Errors: -1 (busy), 45009 (daily quota), 45047 (too many to this user) retry with
back-off; 40003 (invalid openid), 40037 (invalid template), 43004 (the user does not
follow the account), 47001 (data format), 43019 (the user blocked the account) and
anything unknown fail with the errcode in the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.consumers.channels.base import OutboundMessage, SendResult
from herald.consumers.channels.wechat import WeChatChannel, custom_fields

RETRY_ERRCODES: dict[int, str] = {-1: "system busy", 45009: "daily API quota",
                                  45047: "too many messages to this user"}
PERMANENT_ERRCODES: dict[int, str] = {
    40003: "invalid openid",
    40037: "invalid template_id",
    43004: "the user does not follow the account",
    43019: "the user blocked the account",
    47001: "data format error",
}
MAX_VALUE_CHARS = 200  # template field values are short texts


class WeChatOfficialChannel(WeChatChannel):
    """Official Account template messages with a Redis-shared access token."""

    provider = "official"
    path = "/cgi-bin/message/template/send"

    def request_body(self, message: OutboundMessage) -> dict[str, Any] | None:
        custom = custom_fields(message)
        template_id = custom.get("template_id") or self._settings.wechat_template_id
        if not template_id:
            return None
        fields = custom.get("data")
        if not isinstance(fields, Mapping) or not fields:
            fields = {self._settings.wechat_title_field: message.title,
                      self._settings.wechat_body_field: message.body or message.title}
        body: dict[str, Any] = {
            "touser": message.recipient.address,
            "template_id": str(template_id),
            "data": {str(k): {"value": _clip(str(v))} for k, v in fields.items()},
            "client_msg_id": message.idempotency_key,
        }
        url = custom.get("url") or custom.get("page") or self._settings.wechat_page
        if url and str(url).startswith(("http://", "https://")):
            body["url"] = str(url)
        mini = custom.get("miniprogram")
        if isinstance(mini, Mapping) and mini.get("appid"):
            body["miniprogram"] = {"appid": str(mini["appid"]),
                                   "pagepath": str(mini.get("pagepath", ""))}
        return body

    def classify(self, errcode: int, errmsg: str, answer: dict[str, Any]) -> SendResult:
        if errcode == 0:
            msgid = answer.get("msgid")
            return SendResult.sent(str(msgid) if msgid is not None else None, code=0)
        if errcode in RETRY_ERRCODES:
            return SendResult.retry(
                f"errcode {errcode} ({RETRY_ERRCODES[errcode]}): {errmsg}", code=errcode)
        known = PERMANENT_ERRCODES.get(errcode, "rejected")
        return SendResult.failed(f"errcode {errcode} ({known}): {errmsg}", code=errcode)


def _clip(value: str) -> str:
    return value if len(value) <= MAX_VALUE_CHARS else value[: MAX_VALUE_CHARS - 1] + "…"

