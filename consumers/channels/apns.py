"""Apple Push Notification service, token-based, over HTTP/2: the ``apns`` provider of ``push``.

``POST {base}/3/device/<token>`` over HTTP/2 (httpx with h2; APNs speaks nothing
else) with ``authorization: bearer <provider token>``, ``apns-topic`` (the app's
bundle id: the device's ``app``, else HERALD_APNS_TOPIC), ``apns-push-type: alert``,
``apns-priority`` (10 for a critical notification, else 5), ``apns-id`` (a UUID
derived from the delivery's idempotency key, the same on every retry) and the JSON
payload ``{"aps": {"alert": {"title", "body"}}, "notification_id", "data"}``; 200
is sent, its ``apns-id`` names it.

The provider token is the JWT Apple describes ("Establishing a token-based connection
to APNs"): header ``{"alg": "ES256", "kid": <key id>}``, claims ``{"iss": <team id>,
"iat": now}``, signed with the team's .p8 key (HERALD_APNS_PRIVATE_KEY). Apple refuses
a new token more often than every 20 minutes (TooManyProviderTokenUpdates) and one
older than an hour, so every worker shares one through Redis
(consumers/channels/tokens.py), renewed after 45 minutes, or at once after
``ExpiredProviderToken``/``InvalidProviderToken`` (the send is then retried once).

Errors (the answer's ``reason``): ``BadDeviceToken``, ``DeviceTokenNotForTopic`` (400)
and ``Unregistered`` (410) fail and mark the device stale (delivery removes it);
429 and 5xx retry (Retry-After honoured); other 4xx fail with the reason.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from herald.consumers.channels.base import OutboundMessage, SendResult, parse_retry_after
from herald.consumers.channels.tokens import SharedToken
from herald.streams.errors import SettingsError
from herald.streams.keys import Keys
from herald.streams.settings import Settings

TOKEN_LIFETIME_S = 3000.0  # cached for this less tokens.REFRESH_MARGIN_S: 45 minutes
STALE = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"})
TOKEN_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
MAX_PAYLOAD = 4096  # APNs' limit for an alert
APNS_ID_NAMESPACE = uuid.UUID("6f0a3c3e-7d5e-4b1e-9a53-2b1f5a1c0e17")


def signing_key(value: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 key of HERALD_APNS_PRIVATE_KEY (PEM text or a .p8 file's path)."""
    text = value.strip()
    try:
        if "-----BEGIN" not in text:
            with open(text, "rb") as handle:
                pem = handle.read()
        else:
            pem = text.replace("\\n", "\n").encode()
        key = load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SettingsError("HERALD_APNS_PRIVATE_KEY: not a readable PEM private key (the "
                            ".p8 file Apple gives, or its path)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SettingsError("HERALD_APNS_PRIVATE_KEY: APNs signs with an ES256 (P-256) key")
    return key


def provider_token(key: ec.EllipticCurvePrivateKey, team_id: str, key_id: str,
                   now: int) -> str:
    return jwt.encode({"iss": team_id, "iat": now}, key, algorithm="ES256",
                      headers={"kid": key_id})


def apns_id(idempotency_key: str) -> str:
    """A UUID for ``apns-id``, the same for every attempt of one delivery."""
    return str(uuid.uuid5(APNS_ID_NAMESPACE, idempotency_key))


class ApnsProvider:
    """Pushes to Apple devices over one HTTP/2 connection pool per process."""

    name = "push"
    provider = "apns"
    contact = "devices"

    def __init__(self, settings: Settings, redis: Any) -> None:
        self._settings = settings
        self._key = signing_key(settings.apns_private_key) if settings.apns_private_key \
            else None
        self._base = settings.apns_base_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None
        keys = Keys(settings.prefix)
        account = f"{settings.apns_team_id}:{settings.apns_key_id}"
        self.tokens = SharedToken(redis, keys.provider_token("apns", account),
                                  keys.provider_token_lock("apns", account),
                                  settings.push_timeout_s, self._sign)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=max(1, self._settings.delivery_concurrency
                                                      // 100 + 1))
            self._client = httpx.AsyncClient(http1=False, http2=True, trust_env=False,
                                             timeout=self._settings.push_timeout_s,
                                             limits=limits)
        return self._client

    async def _sign(self) -> tuple[str, float]:
        assert self._key is not None
        return provider_token(self._key, self._settings.apns_team_id,
                              self._settings.apns_key_id, int(time.time())), TOKEN_LIFETIME_S

    def payload(self, message: OutboundMessage) -> bytes:
        variant = message.variant
        aps: dict[str, Any] = {"alert": {"title": str(variant.get("title") or message.title),
                                         "body": str(variant.get("body") or message.body)}}
        if variant.get("sound"):
            aps["sound"] = str(variant["sound"])
        if message.critical:
            aps["interruption-level"] = "time-sensitive"
        document: dict[str, Any] = {"aps": aps, "notification_id": message.notification_id}
        if message.data:
            document["data"] = dict(message.data)
        raw = orjson.dumps(document)
        if len(raw) > MAX_PAYLOAD:  # too big with the data: the alert alone
            document.pop("data", None)
            raw = orjson.dumps(document)
        return raw

    def headers(self, token: str, message: OutboundMessage) -> dict[str, str]:
        device = message.devices[0] if message.devices else None
        return {"authorization": f"bearer {token}",
                "apns-topic": (device.app if device and device.app else
                               self._settings.apns_topic),
                "apns-push-type": "alert",
                "apns-priority": "10" if message.critical else "5",
                "apns-id": apns_id(message.idempotency_key),
                "content-type": "application/json"}

    async def send(self, message: OutboundMessage) -> SendResult:
        s = self._settings
        if self._key is None or not (s.apns_team_id and s.apns_key_id and s.apns_topic):
            return SendResult.failed("APNs is not configured (HERALD_APNS_TEAM_ID, _KEY_ID, "
                                     "_PRIVATE_KEY, _TOPIC)")
        body = self.payload(message)
        token = await self.tokens.get()
        result, expired = await self._post(token, body, message)
        if not expired:
            return result
        await self.tokens.invalidate(token)
        result, expired = await self._post(await self.tokens.get(), body, message)
        if expired:
            return SendResult.retry(f"provider token refused twice: {result.detail}",
                                    code=result.code)
        return result

    async def _post(self, token: str, body: bytes, message: OutboundMessage
                    ) -> tuple[SendResult, bool]:
        url = f"{self._base}/3/device/{message.recipient.address}"
        try:
            response = await self._http().post(url, content=body,
                                               headers=self.headers(token, message))
        except (httpx.HTTPError, OSError) as exc:
            return SendResult.retry(f"{type(exc).__name__}: {exc}" if str(exc) else
                                    type(exc).__name__), False
        status = response.status_code
        if status == 200:
            return SendResult.sent(response.headers.get("apns-id"), code=status), False
        try:
            document: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            document = None
        reason = str(document.get("reason") or "") if isinstance(document, dict) else ""
        detail = f"HTTP {status} {reason} [apns {reason or status}]"
        if reason in TOKEN_REASONS:
            return SendResult.retry(detail, code=reason), True
        device = message.devices[0].id if message.devices else ""
        if reason in STALE:
            return SendResult.failed(detail, code=reason, stale=(device,) if device else ()), \
                False
        if status == 429 or status >= 500:
            return SendResult.retry(detail, code=reason or status,
                                    retry_after_s=parse_retry_after(
                                        response.headers.get("retry-after"))), False
        return SendResult.failed(detail, code=reason or status), False

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
