"""Alibaba Cloud SMS (阿里云短信): the ``aliyun`` provider of ``sms``.

``SendSms`` (API version 2017-05-25) with the V3 request signature, ACS3-HMAC-SHA256
(https://www.alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature):

    CanonicalRequest = METHOD \\n /path \\n canonical query \\n canonical headers \\n
                       signed header names \\n hex(sha256(body))
    StringToSign     = "ACS3-HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    Authorization    = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,
                       SignedHeaders=<names>,Signature=hex(hmac_sha256(secret, StringToSign))

The query is every parameter percent-encoded (RFC 3986: only ``A-Z a-z 0-9 - _ . ~``
stay) and sorted; the signed headers are ``host``, ``x-acs-action``,
``x-acs-content-sha256``, ``x-acs-date``, ``x-acs-signature-nonce`` and
``x-acs-version``. The parameters travel in the query of ``POST {base}/``:
``PhoneNumbers`` (the E.164 number without ``+``), ``SignName``, ``TemplateCode``,
``TemplateParam`` (a JSON object) and ``OutId`` (the delivery's idempotency key, which
Alibaba Cloud echoes in receipts).

Content: a template's ``sms`` variant ``{"template_code", "params": {name: value},
"sign_name"}``; without one, HERALD_ALIYUN_SMS_TEMPLATE_CODE with ``{"content": <title
and body>}``. Alibaba Cloud only sends approved templates, so the text itself is
never sent.

Outcomes: ``{"Code": "OK", "BizId"}`` is sent (the BizId names it). Throttling
(``isv.BUSINESS_LIMIT_CONTROL`` — the per-number minute/hour/day limits —
``Throttling.*``), ``isp.SYSTEM_ERROR``, an empty balance and 5xx retry with back-off;
a bad number (``isv.MOBILE_NUMBER_ILLEGAL``), template, sign name or parameters,
and refused credentials (``SignatureDoesNotMatch``, ``InvalidAccessKeyId.*``) fail
with Alibaba Cloud's code in the status.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Mapping
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
    parse_retry_after,
)
from herald.consumers.channels.sms import E164, sms_text
from herald.streams.settings import Settings

ALGORITHM = "ACS3-HMAC-SHA256"
ACTION, VERSION = "SendSms", "2017-05-25"
RESPONSE_PEEK_BYTES = 4096
RETRY_CODES = frozenset({
    "isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.AMOUNT_NOT_ENOUGH",
    "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "isp.OUT_OF_SERVICE", "SignatureNonceUsed",
    "ServiceUnavailable", "InternalError",
})
RETRY_PREFIXES = ("Throttling",)
EXPLAINED = {
    "isv.MOBILE_NUMBER_ILLEGAL": "not a number Alibaba Cloud can send to",
    "isv.SMS_TEMPLATE_ILLEGAL": "unknown or unapproved template code",
    "isv.SMS_SIGNATURE_ILLEGAL": "unknown or unapproved sign name",
    "isv.TEMPLATE_MISSING_PARAMETERS": "the template needs parameters it was not given",
    "isv.BUSINESS_LIMIT_CONTROL": "the number's send limit (per minute, hour or day)",
    "SignatureDoesNotMatch": "the request signature was refused (check the AccessKey secret)",
}


def percent_encode(value: str) -> str:
    """RFC 3986 encoding, as the V3 signature wants it (space is %20, ``~`` stays)."""
    return urllib.parse.quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}"
                    for k, v in sorted(params.items()))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def acs3_authorization(method: str, path: str, query: str, headers: Mapping[str, str],
                       body: bytes, key_id: str, secret: str) -> str:
    """The ``Authorization`` header of a V3-signed request.

    ``headers`` are the request headers to sign, names lower-case (``host`` and the
    ``x-acs-*`` ones, ``x-acs-content-sha256`` included), ``query`` the canonical query.
    """
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join([method, path, query, canonical_headers, signed, sha256_hex(body)])
    to_sign = f"{ALGORITHM}\n{sha256_hex(request.encode())}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={key_id},SignedHeaders={signed},Signature={signature}"


def classify_code(code: str, message: str, status: int, retry_after: str | None) -> SendResult:
    """The result of an answer whose ``Code`` is not ``OK``."""
    detail = f"{code}: {message}" + (f" ({EXPLAINED[code]})" if code in EXPLAINED else "")
    detail += f" [aliyun {code}]"
    if code in RETRY_CODES or code.startswith(RETRY_PREFIXES) or status >= 500 or status == 429:
        return SendResult.retry(detail, code=code, retry_after_s=parse_retry_after(retry_after))
    return SendResult.failed(detail, code=code)


class AliyunSmsChannel:
    """Text messages through Alibaba Cloud's SendSms (approved templates only)."""

    name = "sms"
    provider = "aliyun"
    contact = "phone"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http = HttpSession(settings.sms_timeout_s, settings.delivery_concurrency)
        base = URL(settings.aliyun_sms_base_url.rstrip("/"))
        self._base = base
        self._host = base.raw_authority  # host[:port], as the Host header says
        self._path = base.raw_path.rstrip("/") + "/"  # "/" at Alibaba Cloud

    def params(self, message: OutboundMessage) -> dict[str, str] | None:
        """SendSms's parameters, or None when no template code is known."""
        variant = message.variant
        code = variant.get("template_code") or self._settings.aliyun_sms_template_code
        if not code:
            return None
        given = variant.get("params")
        params = given if isinstance(given, Mapping) else {"content": sms_text(message)}
        return {
            "PhoneNumbers": message.recipient.address.lstrip("+"),
            "SignName": str(variant.get("sign_name") or self._settings.aliyun_sms_sign_name),
            "TemplateCode": str(code),
            "TemplateParam": orjson.dumps({str(k): str(v) for k, v in params.items()}).decode(),
            "OutId": message.idempotency_key[:256],
        }

    def signed_headers(self, query: str, body: bytes, *, date: str | None = None,
                       nonce: str | None = None) -> dict[str, str]:
        """Every header of the request, ``Authorization`` included."""
        headers = {
            "host": self._host,
            "x-acs-action": ACTION,
            "x-acs-version": VERSION,
            "x-acs-date": date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": nonce or secrets.token_hex(16),
            "x-acs-content-sha256": sha256_hex(body),
        }
        headers["Authorization"] = acs3_authorization(
            "POST", self._path, query, headers, body, self._settings.aliyun_access_key_id,
            self._settings.aliyun_access_key_secret)
        return headers

    async def send(self, message: OutboundMessage) -> SendResult:
        settings = self._settings
        if not (settings.aliyun_access_key_id and settings.aliyun_access_key_secret):
            return SendResult.failed("Alibaba Cloud SMS is not configured "
                                     "(HERALD_ALIYUN_ACCESS_KEY_ID/_SECRET)")
        if not E164.match(message.recipient.address):
            return SendResult.failed(f"not an E.164 phone number: {message.recipient.address!r}")
        params = self.params(message)
        if params is None:
            return SendResult.failed("no Alibaba Cloud template code (a template's sms variant "
                                     "or HERALD_ALIYUN_SMS_TEMPLATE_CODE)")
        if not params["SignName"]:
            return SendResult.failed("no sign name (HERALD_ALIYUN_SMS_SIGN_NAME)")
        query = canonical_query(params)
        body = b""
        url = URL(f"{self._base.origin()}{self._path}?{query}", encoded=True)
        try:
            async with self._http.get().post(url, data=body, headers=self.signed_headers(
                    query, body), allow_redirects=False) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.content.read(RESPONSE_PEEK_BYTES)
        except TRANSPORT_ERRORS as exc:
            return SendResult.retry(error_detail(exc))
        try:
            answer: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("Code"), str):
            text = raw.decode("utf-8", "replace")[:200] or "no body"
            failed = classify_http(status, retry_after, text)
            return failed or SendResult.retry(f"unreadable answer: {text}", code=status)
        code = answer["Code"]
        if code == "OK" and 200 <= status < 300:
            biz = answer.get("BizId")
            return SendResult.sent(str(biz) if biz else None, code="OK")
        return classify_code(code, str(answer.get("Message", "")), status, retry_after)

    async def aclose(self) -> None:
        await self._http.aclose()
