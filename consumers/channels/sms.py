"""SMS channel: Twilio's Messages API shape, base URL configurable (the ``twilio``
provider of ``sms``; aliyun_sms.py and tencent_sms.py are the others).

``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with form fields ``To``,
``From`` (or ``MessagingServiceSid`` when HERALD_SMS_FROM starts with ``MG``) and
``Body``, HTTP basic auth (account SID, auth token). 201/2xx with a JSON ``sid``
is sent. Errors are Twilio's JSON ``{"code", "message", "more_info", "status"}``
and map by HTTP status: 429 and 5xx retry (Retry-After honoured), other 4xx
(bad number, unverified sender, bad credentials) fail permanently. Timeouts and
connection errors retry.

The delivery's idempotency key travels in HERALD_SMS_IDEMPOTENCY_HEADER
(default ``I-Twilio-Idempotency-Token``); a provider that ignores it may send a
duplicate when a request timed out after it was accepted. A recipient that is
not an E.164 number (``+`` then 7-15 digits) fails without a request. A template's
``sms`` variant may give the ``text`` to send instead of the title and body.
"""

from __future__ import annotations

import base64
import re
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
from herald.streams.settings import Settings

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio's limit for one message body (it splits into segments itself).
MAX_BODY_CHARS = 1600
RESPONSE_PEEK_BYTES = 4096


def sms_text(message: OutboundMessage) -> str:
    """The text sent: the variant's ``text``, else title and body on separate lines,
    clipped to MAX_BODY_CHARS."""
    variant_text = message.variant.get("text") if message.variant else None
    if isinstance(variant_text, str) and variant_text:
        text = variant_text
    else:
        text = f"{message.title}\n{message.body}" if message.body else message.title
    return text if len(text) <= MAX_BODY_CHARS else text[: MAX_BODY_CHARS - 1] + "…"


def provider_error(raw: bytes) -> tuple[int | None, str]:
    """Twilio's error ``code`` and ``message`` from a response body (best effort)."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, raw.decode("utf-8", "replace")[:200] or "no body"
    if not isinstance(document, dict):
        return None, str(document)[:200]
    code = document.get("code")
    message = str(document.get("message") or "no message")
    if document.get("more_info"):
        message += f" ({document['more_info']})"
    return (code if isinstance(code, int) else None), message


class SmsChannel:
    """Text messages through a Twilio-shaped Messages API."""

    name = "sms"
    provider = "twilio"
    contact = "phone"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http = HttpSession(settings.sms_timeout_s, settings.delivery_concurrency)
        base = settings.sms_base_url.rstrip("/")
        self._url = f"{base}/2010-04-01/Accounts/{settings.sms_account_sid}/Messages.json"
        credentials = f"{settings.sms_account_sid}:{settings.sms_auth_token}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")

    def _form(self, message: OutboundMessage) -> dict[str, str]:
        sender = self._settings.sms_from
        form = {"To": message.recipient.address, "Body": sms_text(message)}
        if sender.startswith("MG"):
            form["MessagingServiceSid"] = sender
        else:
            form["From"] = sender
        return form

    async def send(self, message: OutboundMessage) -> SendResult:
        if not (self._settings.sms_account_sid and self._settings.sms_from):
            return SendResult.failed("SMS is not configured (HERALD_SMS_ACCOUNT_SID/_FROM)")
        if not E164.match(message.recipient.address):
            return SendResult.failed(f"not an E.164 phone number: {message.recipient.address!r}")
        headers = {
            "Authorization": self._authorization,
            self._settings.sms_idempotency_header: message.idempotency_key,
        }
        try:
            async with self._http.get().post(
                self._url,
                data=self._form(message),
                headers=headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.content.read(RESPONSE_PEEK_BYTES)
        except TRANSPORT_ERRORS as exc:
            return SendResult.retry(error_detail(exc))
        code, text = provider_error(raw) if status >= 300 else (None, "")
        result = classify_http(status, retry_after, text)
        if result is None:
            return self._accepted(status, raw)
        if code is not None:  # Twilio's own error code is more telling than the status
            return SendResult(
                outcome=result.outcome,
                code=code,
                detail=f"{result.detail} [twilio {code}]",
                retry_after_s=result.retry_after_s,
            )
        return result

    @staticmethod
    def _accepted(status: int, raw: bytes) -> SendResult:
        try:
            document: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        sid = document.get("sid") if isinstance(document, dict) else None
        if not isinstance(sid, str):
            # Accepted, but we cannot name it: still sent (retrying would duplicate).
            return SendResult.sent(None, code=status)
        return SendResult.sent(sid, code=status)

    async def aclose(self) -> None:
        await self._http.aclose()
