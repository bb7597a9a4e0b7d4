"""Tencent Cloud SMS (腾讯云短信): the ``tencent`` provider of ``sms``.

``SendSms`` (API version 2021-01-11) signed with TC3-HMAC-SHA256
(https://www.tencentcloud.com/document/api/382/40674):

    CanonicalRequest = POST \\n / \\n \\n canonical headers \\n signed names \\n
                       hex(sha256(payload))
    StringToSign     = TC3-HMAC-SHA256 \\n timestamp \\n <date>/sms/tc3_request \\n
                       hex(sha256(CanonicalRequest))
    SecretSigning    = HMAC(HMAC(HMAC("TC3" + SecretKey, date), "sms"), "tc3_request")
    Authorization    = TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request,
                       SignedHeaders=<names>, Signature=hex(HMAC(SecretSigning, StringToSign))

``date`` is the UTC date of the timestamp (X-TC-Timestamp); the signed headers are
``content-type``, ``host`` and ``x-tc-action`` (values lower-cased). The JSON body:
``{"PhoneNumberSet": [E.164], "SmsSdkAppId", "SignName", "TemplateId",
"TemplateParamSet": [...], "SessionContext": <idempotency key>}``.

Content: a template's ``sms`` variant ``{"template_code" (the TemplateId), "params":
[values in the template's {1}, {2}… order], "sign_name"}``; without one,
HERALD_TENCENT_SMS_TEMPLATE_ID with one parameter, the title and body.

Outcomes: the number's ``SendStatusSet`` entry with ``Code: Ok`` is sent (its
SerialNo names it). Frequency limits (``LimitExceeded.PhoneNumber*``,
``RequestLimitExceeded*``), ``InternalError*`` and an empty SMS package retry with
back-off; a bad number (``InvalidParameterValue.IncorrectPhoneNumber``), an
unapproved template or sign name, refused credentials (``AuthFailure.*``) and
anything else fail with Tencent Cloud's code in the status.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
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
from herald.consumers.channels.sms import E164, sms_text
from herald.streams.settings import Settings

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE, ACTION, VERSION = "sms", "SendSms", "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
RESPONSE_PEEK_BYTES = 8192
RETRY_PREFIXES = ("LimitExceeded", "RequestLimitExceeded", "InternalError",
                  "FailedOperation.InsufficientBalanceInSmsPackage", "ResourceUnavailable")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_authorization(secret_id: str, secret_key: str, service: str, timestamp: int,
                      headers: Mapping[str, str], payload: bytes) -> str:
    """The ``Authorization`` header of a TC3-signed POST to ``/`` (headers lower-case)."""
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{headers[name].strip().lower()}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join(["POST", "/", "", canonical_headers, signed,
                         hashlib.sha256(payload).hexdigest()])
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed}, " \
           f"Signature={signature}"


def classify_code(code: str, message: str) -> SendResult:
    """The result of a Tencent Cloud code other than ``Ok``."""
    detail = f"{code}: {message} [tencent {code}]"
    if code.startswith(RETRY_PREFIXES):
        return SendResult.retry(detail, code=code)
    return SendResult.failed(detail, code=code)


class TencentSmsChannel:
    """Text messages through Tencent Cloud's SendSms (approved templates only)."""

    name = "sms"
    provider = "tencent"
    contact = "phone"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http = HttpSession(settings.sms_timeout_s, settings.delivery_concurrency)
        base = URL(settings.tencent_sms_base_url.rstrip("/"))
        self._url = URL(f"{base}/")
        self._host = base.raw_authority

    def payload(self, message: OutboundMessage) -> dict[str, Any] | None:
        """SendSms's body, or None when no template id is known."""
        variant = message.variant
        template = variant.get("template_code") or self._settings.tencent_sms_template_id
        if not template:
            return None
        given = variant.get("params")
        params = [str(v) for v in given] if isinstance(given, Sequence) and \
            not isinstance(given, str) else [sms_text(message)]
        return {
            "PhoneNumberSet": [message.recipient.address],
            "SmsSdkAppId": self._settings.tencent_sms_app_id,
            "SignName": str(variant.get("sign_name") or self._settings.tencent_sms_sign_name),
            "TemplateId": str(template),
            "TemplateParamSet": params,
            "SessionContext": message.idempotency_key,
        }

    def headers(self, payload: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Every header of the request, ``Authorization`` included."""
        ts = int(time.time()) if timestamp is None else timestamp
        signed = {"content-type": CONTENT_TYPE, "host": self._host, "x-tc-action": ACTION}
        auth = tc3_authorization(self._settings.tencent_secret_id,
                                 self._settings.tencent_secret_key, SERVICE, ts, signed, payload)
        return {"Authorization": auth, "Content-Type": CONTENT_TYPE, "Host": self._host,
                "X-TC-Action": ACTION, "X-TC-Version": VERSION, "X-TC-Timestamp": str(ts),
                "X-TC-Region": self._settings.tencent_sms_region}

    async def send(self, message: OutboundMessage) -> SendResult:
        settings = self._settings
        if not (settings.tencent_secret_id and settings.tencent_secret_key
                and settings.tencent_sms_app_id):
            return SendResult.failed("Tencent Cloud SMS is not configured (HERALD_TENCENT_"
                                     "SECRET_ID/_SECRET_KEY, HERALD_TENCENT_SMS_APP_ID)")
        if not E164.match(message.recipient.address):
            return SendResult.failed(f"not an E.164 phone number: {message.recipient.address!r}")
        document = self.payload(message)
        if document is None:
            return SendResult.failed("no Tencent Cloud template id (a template's sms variant "
                                     "or HERALD_TENCENT_SMS_TEMPLATE_ID)")
        body = orjson.dumps(document)
        try:
            async with self._http.get().post(self._url, data=body, headers=self.headers(body),
                                             allow_redirects=False) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.content.read(RESPONSE_PEEK_BYTES)
        except TRANSPORT_ERRORS as exc:
            return SendResult.retry(error_detail(exc))
        text = raw.decode("utf-8", "replace")[:200] or "no body"
        failed = classify_http(status, retry_after, text)
        if failed is not None:
            return failed
        try:
            answer: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        response_doc = answer.get("Response") if isinstance(answer, dict) else None
        if not isinstance(response_doc, dict):
            return SendResult.retry(f"unreadable answer: {text}", code=status)
        error = response_doc.get("Error")
        if isinstance(error, dict):
            return classify_code(str(error.get("Code", "")), str(error.get("Message", "")))
        statuses = response_doc.get("SendStatusSet")
        entry = statuses[0] if isinstance(statuses, list) and statuses else None
        if not isinstance(entry, dict):
            return SendResult.retry(f"no send status in the answer: {text}", code=status)
        code = str(entry.get("Code", ""))
        if code == "Ok":
            serial = entry.get("SerialNo")
            return SendResult.sent(str(serial) if serial else None, code="Ok")
        return classify_code(code, str(entry.get("Message", "")))

    async def aclose(self) -> None:
        await self._http.aclose()
