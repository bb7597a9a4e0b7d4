"""Webhook channel: a JSON POST signed as the Standard Webhooks spec says.

Headers: ``webhook-id`` (the delivery's idempotency key — the same on every
retry, so receivers can de-duplicate), ``webhook-timestamp`` (integer Unix
seconds of this attempt) and ``webhook-signature``: space-separated ``v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per secret of the endpoint
(secrets are ``whsec_<base64>``; a bare base64 secret is accepted too).

The body is the same bytes on every attempt (the notification's own time, not
the attempt's): ``{"type", "timestamp", "data"}`` as the spec recommends.

Outcomes: 2xx sent; 410 disabled (the endpoint asked to stop); 429, 5xx,
timeouts and connection errors retry (Retry-After honoured); redirects and other
4xx fail permanently; a missing or malformed secret or URL fails permanently
without a request. The endpoint URL is called as given (no SSRF filtering here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from yarl import URL

from herald.consumers.channels.base import (
    TRANSPORT_ERRORS,
    HttpSession,
    OutboundMessage,
    SendResult,
    classify_http,
    error_detail,
)
from herald.streams.errors import HeraldError
from herald.streams.settings import Settings

SECRET_PREFIX = "whsec_"
EVENT_TYPE = "notification.created"
# Longest response text kept as detail (a receiver's error page can be large).
RESPONSE_PEEK_BYTES = 512


class WebhookSecretError(HeraldError, ValueError):
    """Raised when a secret is not ``whsec_<base64>`` (or bare base64)."""


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; raises WebhookSecretError."""
    raw = secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSecretError("webhook secret is not base64 (whsec_<base64>)") from exc
    if not key:
        raise WebhookSecretError("webhook secret is empty")
    return key


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<sig>`` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    parts = []
    for secret in secrets:
        digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(parts)


def payload(message: OutboundMessage) -> bytes:
    """The request body: compact UTF-8 JSON, identical on every attempt."""
    when = datetime.fromtimestamp(message.created_at / 1000, tz=UTC)
    document: dict[str, Any] = {
        "type": EVENT_TYPE,
        "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": {
            "id": message.notification_id,
            "user": message.user,
            "category": message.category,
            "title": message.title,
            "body": message.body,
            "data": dict(message.data),
        },
    }
    return orjson.dumps(document)


class WebhookChannel:
    """Signed JSON POSTs to each user's endpoint; one shared ClientSession."""

    name = "webhook"
    provider = "standard-webhooks"
    contact = "webhook_url"

    def __init__(self, settings: Settings) -> None:
        self._http = HttpSession(settings.webhook_timeout_s, settings.delivery_concurrency)

    async def send(self, message: OutboundMessage) -> SendResult:
        url = message.recipient.address
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            return SendResult.failed(f"invalid webhook URL {url!r}")
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return SendResult.failed(f"invalid webhook URL {url!r} (need http or https)")
        secrets = (message.recipient.secret or "").split()
        if not secrets:
            return SendResult.failed("the endpoint has no webhook secret")
        try:
            body = payload(message)
        except orjson.JSONEncodeError as exc:
            return SendResult.failed(f"data is not JSON: {exc}")
        msg_id = message.idempotency_key
        timestamp = int(time.time())
        try:
            signature = sign(secrets, msg_id, timestamp, body)
        except WebhookSecretError as exc:
            return SendResult.failed(str(exc))
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        try:
            async with self._http.get().post(
                parsed, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                peek = await response.content.read(RESPONSE_PEEK_BYTES)
        except TRANSPORT_ERRORS as exc:
            return SendResult.retry(error_detail(exc))
        if status == 410:
            return SendResult.disabled("HTTP 410: the endpoint asked to stop", code=status)
        detail = peek.decode("utf-8", "replace") or "no body"
        result = classify_http(status, retry_after, detail)
        return result if result is not None else SendResult.sent(msg_id, code=status)

    async def aclose(self) -> None:
        await self._http.aclose()
