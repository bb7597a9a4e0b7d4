"""Firebase Cloud Messaging HTTP v1: the ``fcm`` provider of ``push``.

``POST {base}/v1/projects/{project}/messages:send`` with ``Authorization: Bearer
<OAuth2 access token>`` and ``{"message": {"token", "notification": {"title",
"body"}, "data": {…strings}, "android": {"priority"}}}``; 200 ``{"name":
"projects/…/messages/…"}`` is sent.

The access token comes from the service account (HERALD_FCM_CREDENTIALS: the JSON
Google gives, or its path), as Google's OAuth2 for service accounts says: a JWT
signed RS256 with the account's private key (header ``kid`` = ``private_key_id``;
claims ``iss`` = ``client_email``, ``scope`` =
``https://www.googleapis.com/auth/firebase.messaging``, ``aud`` = ``token_uri``,
``iat``, ``exp`` = ``iat`` + 1 h), POSTed to ``token_uri`` as
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``; the answer's
``access_token`` is shared by every worker through Redis (consumers/channels/tokens.py)
for its ``expires_in`` less a margin, and fetched again after a 401.

Errors (the ``errorCode`` of the answer's FcmError detail, else its ``status``):
``UNREGISTERED`` and ``SENDER_ID_MISMATCH`` fail and mark the device stale (delivery
removes it); ``QUOTA_EXCEEDED`` (429, Retry-After honoured), ``UNAVAILABLE`` and
``INTERNAL`` retry; ``INVALID_ARGUMENT``, ``THIRD_PARTY_AUTH_ERROR`` and the rest fail
with the code in the status.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import jwt
import orjson

from herald.consumers.channels.base import (
    TRANSPORT_ERRORS,
    HttpSession,
    OutboundMessage,
    SendResult,
    error_detail,
    parse_retry_after,
)
from herald.consumers.channels.tokens import SharedToken, TokenUnavailable
from herald.streams.errors import SettingsError
from herald.streams.keys import Keys
from herald.streams.settings import Settings

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME_S = 3600
STALE = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
RETRY = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
RESPONSE_PEEK_BYTES = 8192
MAX_DATA_VALUE = 1024  # data values are strings; longer ones are cut


@functools.lru_cache(maxsize=8)
def service_account(credentials: str) -> dict[str, Any]:
    """The service account of HERALD_FCM_CREDENTIALS (JSON text or a file's path);
    SettingsError when it cannot be read or lacks what signing needs."""
    text = credentials.strip()
    try:
        if not text.startswith("{"):
            text = Path(text).expanduser().read_text(encoding="utf-8")
        account = json.loads(text)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"HERALD_FCM_CREDENTIALS: cannot read the service account: "
                            f"{type(exc).__name__}") from exc
    if not isinstance(account, dict):
        raise SettingsError("HERALD_FCM_CREDENTIALS: not a service account JSON object")
    missing = [k for k in ("client_email", "private_key") if not account.get(k)]
    if missing:
        raise SettingsError(f"HERALD_FCM_CREDENTIALS: the service account lacks "
                            f"{', '.join(missing)}")
    try:
        jwt.encode({"probe": 1}, account["private_key"], algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise SettingsError("HERALD_FCM_CREDENTIALS: private_key is not an RSA key in PEM") \
            from exc
    return account


def assertion(account: dict[str, Any], now: int) -> str:
    """The signed JWT exchanged for an access token."""
    token_uri = account.get("token_uri") or DEFAULT_TOKEN_URI
    claims = {"iss": account["client_email"], "scope": SCOPE, "aud": token_uri, "iat": now,
              "exp": now + ASSERTION_LIFETIME_S}
    headers = {"kid": account["private_key_id"]} if account.get("private_key_id") else None
    return jwt.encode(claims, account["private_key"], algorithm="RS256", headers=headers)


def error_code(document: Any) -> tuple[str, str]:
    """(errorCode or status, message) of an FCM error answer."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = str(error.get("status") or "")
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
    return code, str(error.get("message") or "")


class FcmProvider:
    """Pushes to Android (and FCM-registered) devices, one device per send."""

    name = "push"
    provider = "fcm"
    contact = "devices"

    def __init__(self, settings: Settings, redis: Any) -> None:
        self._settings = settings
        self._http = HttpSession(settings.push_timeout_s, settings.delivery_concurrency)
        self._account = service_account(settings.fcm_credentials) \
            if settings.fcm_credentials else None
        account = self._account or {}
        self._project = settings.fcm_project_id or str(account.get("project_id") or "")
        self._url = (f"{settings.fcm_base_url.rstrip('/')}/v1/projects/{self._project}"
                     "/messages:send")
        keys = Keys(settings.prefix)
        who = str(account.get("client_email") or "none")
        self.tokens = SharedToken(redis, keys.provider_token("fcm", who),
                                  keys.provider_token_lock("fcm", who), settings.push_timeout_s,
                                  self._fetch_token)

    async def _fetch_token(self) -> tuple[str, float]:
        assert self._account is not None
        token_uri = self._account.get("token_uri") or DEFAULT_TOKEN_URI
        form = {"grant_type": GRANT_TYPE, "assertion": assertion(self._account, int(time.time()))}
        try:
            async with self._http.get().post(token_uri, data=form) as response:
                status = response.status
                raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise TokenUnavailable(SendResult.retry(f"OAuth2 token: {error_detail(exc)}")) \
                from exc
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        token = document.get("access_token") if isinstance(document, dict) else None
        if status != 200 or not isinstance(token, str) or not token:
            what = document.get("error") if isinstance(document, dict) else None
            raise TokenUnavailable(SendResult.retry(f"OAuth2 token: HTTP {status} {what or ''}",
                                                    code=status))
        expires_in = document.get("expires_in")  # type: ignore[union-attr]
        return token, float(expires_in) if isinstance(expires_in, int | float) else 3600.0

    def request_body(self, message: OutboundMessage) -> dict[str, Any]:
        variant = message.variant
        data = {str(k): (v if isinstance(v, str) else orjson.dumps(v).decode())[:MAX_DATA_VALUE]
                for k, v in message.data.items()}
        data["notification_id"] = message.notification_id
        return {"message": {
            "token": message.recipient.address,
            "notification": {"title": str(variant.get("title") or message.title),
                             "body": str(variant.get("body") or message.body)},
            "data": data,
            "android": {"priority": "high" if message.critical else "normal"},
        }}

    async def send(self, message: OutboundMessage) -> SendResult:
        if self._account is None or not self._project:
            return SendResult.failed("FCM is not configured (HERALD_FCM_CREDENTIALS)")
        body = orjson.dumps(self.request_body(message))
        try:
            token = await self.tokens.get()
            result, unauthorized = await self._post(token, body, message)
            if not unauthorized:
                return result
            await self.tokens.invalidate(token)
            token = await self.tokens.get()
        except TokenUnavailable as exc:
            return exc.result
        result, unauthorized = await self._post(token, body, message)
        if unauthorized:
            return SendResult.retry(f"OAuth2 token refused twice: {result.detail}", code=401)
        return result

    async def _post(self, token: str, body: bytes, message: OutboundMessage
                    ) -> tuple[SendResult, bool]:
        headers = {"Authorization": f"Bearer {token}",
                   "content-type": "application/json; charset=utf-8"}
        try:
            async with self._http.get().post(self._url, data=body, headers=headers,
                                             allow_redirects=False) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.content.read(RESPONSE_PEEK_BYTES)
        except TRANSPORT_ERRORS as exc:
            return SendResult.retry(error_detail(exc)), False
        try:
            document: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        if 200 <= status < 300:
            name = document.get("name") if isinstance(document, dict) else None
            return SendResult.sent(str(name) if name else None, code=status), False
        code, text = error_code(document)
        detail = f"HTTP {status} {code}: {text} [fcm {code or status}]"
        if status == 401 or code == "UNAUTHENTICATED":
            return SendResult.retry(detail, code=code or status), True
        device = message.devices[0].id if message.devices else ""
        if code in STALE:
            return SendResult.failed(detail, code=code, stale=(device,) if device else ()), False
        if code in RETRY or status == 429 or status >= 500:
            return SendResult.retry(detail, code=code or status,
                                    retry_after_s=parse_retry_after(retry_after)), False
        return SendResult.failed(detail, code=code or status), False

    async def aclose(self) -> None:
        await self._http.aclose()
