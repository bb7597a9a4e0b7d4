"""WeChat channel: subscribe (template) messages to a user's openid.

``POST {base}/cgi-bin/message/subscribe/send?access_token=…`` with JSON
``{"touser", "template_id", "page"?, "data": {field: {"value": …}}, "lang"}``;
the answer is ``{"errcode", "errmsg"[, "msgid"]}`` and errcode 0 is sent.

The title and body go into the template fields HERALD_WECHAT_TITLE_FIELD and
HERALD_WECHAT_BODY_FIELD of HERALD_WECHAT_TEMPLATE_ID; a notification may pass
its own under ``data["wechat"]`` = ``{"template_id", "page", "data": {field:
value}, "miniprogram_state"}``, and a template's ``wechat`` variant
(consumers/templates/) ``{"template_id", "fields": {field: value}, "page"}`` wins over
both. Values are clipped to WeChat's field limits (``thing`` 20 characters,
``phrase`` 5, ``character_string`` 32).

This is the ``miniprogram`` provider of the ``wechat`` channel
(HERALD_WECHAT_PROVIDER); wechat_official.py (Official Account template messages)
shares its token handling and send loop.

Token errors (40001, 40014, 42001) drop the cached token, fetch a fresh one and
retry the send once. Errcode -1 (busy) and the quota codes retry; the rest fail
permanently (invalid openid, template or data, user refused). WeChat's
subscribe API takes no idempotency key, so a send whose answer was lost (timeout)
may reach the user twice when retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from herald.consumers.channels.base import (
    TRANSPORT_ERRORS,
    HttpSession,
    OutboundMessage,
    SendResult,
    classify_http,
    error_detail,
)
from herald.consumers.channels.tokens import SharedToken
from herald.consumers.channels.wechat_token import AccessTokens, TokenUnavailable
from herald.streams.settings import Settings

# Access token expired or invalid: refresh and try once more.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# Transient: system busy, API call quotas (reset by WeChat later).
RETRY_ERRCODES: dict[int, str] = {-1: "system busy", 45009: "daily API quota", 45011: "API rate"}
# Known permanent answers (anything else unknown is permanent too).
PERMANENT_ERRCODES: dict[int, str] = {
    40003: "invalid openid",
    40037: "invalid template_id",
    41030: "invalid page",
    43101: "user refused subscribe messages",
    47003: "template data invalid",
}
# Longest value WeChat accepts per template field type (by field-name prefix).
FIELD_LIMITS: dict[str, int] = {"thing": 20, "phrase": 5, "character_string": 32}


def clip_field(name: str, value: str) -> str:
    """``value`` cut to the limit of the field type named by ``name``'s prefix."""
    kind = name.rstrip("0123456789")
    limit = FIELD_LIMITS.get(kind)
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def classify_errcode(errcode: int, errmsg: str, msgid: Any = None) -> SendResult:
    """The result for a WeChat answer other than a token error."""
    if errcode == 0:
        return SendResult.sent(str(msgid) if msgid is not None else None, code=0)
    if errcode in RETRY_ERRCODES:
        return SendResult.retry(
            f"errcode {errcode} ({RETRY_ERRCODES[errcode]}): {errmsg}", code=errcode
        )
    known = PERMANENT_ERRCODES.get(errcode, "rejected")
    return SendResult.failed(f"errcode {errcode} ({known}): {errmsg}", code=errcode)


def custom_fields(message: OutboundMessage) -> Mapping[str, Any]:
    """What the notification says about its WeChat message: the template variant
    (``fields`` becomes ``data``), else ``data["wechat"]``, else nothing."""
    variant = message.variant
    if variant:
        out = dict(variant)
        if "fields" in out:
            out["data"] = out.pop("fields")
        return out
    custom = message.data.get("wechat")
    return custom if isinstance(custom, Mapping) else {}


class WeChatChannel:
    """Subscribe messages with a Redis-shared access token."""

    name = "wechat"
    provider = "miniprogram"
    contact = "wechat_openid"
    path = "/cgi-bin/message/subscribe/send"
    token_errcodes: frozenset[int] = TOKEN_ERRCODES

    def __init__(self, settings: Settings, redis: Any) -> None:
        self._settings = settings
        self._http = HttpSession(settings.wechat_timeout_s, settings.delivery_concurrency)
        self.tokens: SharedToken = AccessTokens(redis, settings, self._http)
        self._url = settings.wechat_base_url.rstrip("/") + self.path

    def request_body(self, message: OutboundMessage) -> dict[str, Any] | None:
        """The JSON document sent, or None when no template id is known."""
        custom = custom_fields(message)
        template_id = custom.get("template_id") or self._settings.wechat_template_id
        if not template_id:
            return None
        fields = custom.get("data")
        if not isinstance(fields, Mapping) or not fields:
            fields = {
                self._settings.wechat_title_field: message.title,
                self._settings.wechat_body_field: message.body or message.title,
            }
        body: dict[str, Any] = {
            "touser": message.recipient.address,
            "template_id": str(template_id),
            "data": {str(k): {"value": clip_field(str(k), str(v))} for k, v in fields.items()},
            "lang": "zh_CN",
        }
        page = custom.get("page") or self._settings.wechat_page
        if page:
            body["page"] = str(page)
        if custom.get("miniprogram_state"):
            body["miniprogram_state"] = str(custom["miniprogram_state"])
        return body

    async def send(self, message: OutboundMessage) -> SendResult:
        if not (self._settings.wechat_appid and self._settings.wechat_secret):
            return SendResult.failed("WeChat is not configured (HERALD_WECHAT_APPID/_SECRET)")
        document = self.request_body(message)
        if document is None:
            return SendResult.failed("no WeChat template id (HERALD_WECHAT_TEMPLATE_ID)")
        return await self.post_with_token(orjson.dumps(document))

    async def post_with_token(self, body: bytes) -> SendResult:
        """POST ``body`` with the shared token; a token error refreshes it and retries once."""
        try:
            token = await self.tokens.get()
            result, errcode = await self._post(token, body)
            if errcode not in self.token_errcodes:
                return result
            await self.tokens.invalidate(token)
            token = await self.tokens.get()
        except TokenUnavailable as exc:
            return exc.result
        result, errcode = await self._post(token, body)
        if errcode in self.token_errcodes:
            return SendResult.retry(f"access token rejected twice: {result.detail}", code=errcode)
        return result

    async def _post(self, token: str, body: bytes) -> tuple[SendResult, int | None]:
        """One send; the errcode is returned apart so token errors can be retried."""
        try:
            async with self._http.get().post(
                self._url,
                params={"access_token": token},
                data=body,
                headers={"content-type": "application/json; charset=utf-8"},
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            return SendResult.retry(error_detail(exc)), None
        text = raw.decode("utf-8", "replace")[:200]
        failed = classify_http(status, retry_after, text)
        if failed is not None:
            return failed, None
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("errcode", 0), int):
            return SendResult.retry(f"unreadable answer: {text}", code=status), None
        errcode = int(answer.get("errcode", 0))
        errmsg = str(answer.get("errmsg", ""))
        if errcode in self.token_errcodes:
            return SendResult.retry(f"errcode {errcode}: {errmsg}", code=errcode), errcode
        return self.classify(errcode, errmsg, answer), errcode

    def classify(self, errcode: int, errmsg: str, answer: dict[str, Any]) -> SendResult:
        """The result of an answer that is not a token error."""
        return classify_errcode(errcode, errmsg, answer.get("msgid"))

    async def aclose(self) -> None:
        await self._http.aclose()
