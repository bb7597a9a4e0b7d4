"""The provider interface: one outbound message in, one classified result out.

A :class:`Provider` (a channel's implementation: Twilio, Alibaba Cloud or Tencent
Cloud for ``sms``…; consumers/channels/registry.py picks one per channel from the
settings) sends one :class:`OutboundMessage` to one recipient and answers a
:class:`SendResult` that says what the delivery worker should do next:

- ``sent``: the provider accepted it (``provider_id`` names it there);
- ``retry``: a transient failure (5xx, 429, timeout, connection error, provider
  busy); try again later, not before ``retry_after_s`` when the provider said so;
- ``failed``: a permanent failure (4xx other than 429, invalid recipient,
  rejected content); retrying cannot help;
- ``disabled``: the endpoint asked never to be called again (webhook 410).

A result may also name ``stale`` device ids (the provider said their tokens are no
longer valid: delivery removes them) and, for a send to several devices, the
``remaining`` ones a retry should still reach.

Guarantees: ``send`` never raises for a provider outcome (HTTP status, timeout,
connection error, SMTP reply); it raises only on cancellation or a programming
error, which the worker treats like ``retry``. A timed-out request may still have
been processed by the provider, so every channel passes the message's
idempotency key (stable per notification, channel and recipient) to the provider
where it has a place for one; a retry is therefore a duplicate only for
providers that ignore it.
"""

from __future__ import annotations

import enum
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

import aiohttp

# Longest provider-requested delay honoured (a Retry-After of days is a bug there).
MAX_RETRY_AFTER_S = 86400.0
# Longest error text kept in a result (it ends up in a DeliveryFailed event).
MAX_DETAIL_CHARS = 300

# Which profile field holds each channel's address (see events.ProfileChanged); a
# provider may name another (``Provider.contact``: WeCom's ``wecom_userid``).
PROFILE_FIELDS: dict[str, str] = {
    "webhook": "webhook_url",
    "sms": "phone",
    "wechat": "wechat_openid",
    "email": "email",
    "push": "devices",
}
WEBHOOK_SECRET_FIELD = "webhook_secret"


def idempotency_key(notification_id: str, channel: str, address: str) -> str:
    """The key that names one delivery: stable per (notification, channel, recipient).

    ``<notification_id>_<channel>_<16 hex of blake2b(address)>``: only letters,
    digits and ``_`` (Standard Webhooks forbids ``.`` in ``webhook-id``), no
    address in clear, the same on every attempt and in every process.
    """
    digest = hashlib.blake2b(address.encode("utf-8"), digest_size=8).hexdigest()
    return f"{notification_id}_{channel}_{digest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    """Where one delivery goes: the channel's address and, for webhooks, the secret.

    ``secret`` is the endpoint's ``whsec_<base64>`` signing secret; several
    secrets separated by spaces are all used (zero-downtime rotation).
    """

    address: str
    secret: str | None = None

    def __repr__(self) -> str:  # never print secrets in logs or test output
        return f"Recipient(address={self.address!r}, secret={'***' if self.secret else None})"


def recipient_for(
    channel: str, profile: Mapping[str, str | None], overrides: Mapping[str, str] | None = None,
    field_name: str | None = None,
) -> Recipient | None:
    """The recipient of ``channel`` from a profile and per-notification overrides.

    ``overrides`` (NotificationContent.recipients) may name either the channel
    (``{"sms": "+86..."}``) or the profile field (``{"phone": "+86..."}``); it
    wins over the profile. None when the user has no address for the channel
    (the worker records ``skipped``). ``field_name``: the profile field to read
    (default: the channel's in :data:`PROFILE_FIELDS`).
    """
    overrides = overrides or {}
    field_name = field_name or PROFILE_FIELDS.get(channel, channel)
    address = overrides.get(channel) or overrides.get(field_name) or profile.get(field_name)
    if not address:
        return None
    secret = None
    if channel == "webhook":
        secret = overrides.get(WEBHOOK_SECRET_FIELD) or profile.get(WEBHOOK_SECRET_FIELD)
    return Recipient(address=address, secret=secret or None)


@dataclass(frozen=True, slots=True)
class Device:
    """One push device of a user: its id (a digest of platform and token), platform
    (``fcm`` or ``apns``), provider token and, for APNs, its app's topic if not the
    default."""

    id: str
    platform: str
    token: str
    app: str | None = None
    registered_at: int = 0

    def __repr__(self) -> str:  # tokens are personal: never in logs
        return f"Device(id={self.id!r}, platform={self.platform!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMessage:
    """One notification on its way to one recipient on one channel.

    ``created_at`` is the notification's time (ms, the envelope's), so the payload
    is identical on every attempt; ``attempt`` counts from 1. ``variant`` is the
    channel's rendered template variant (consumers/templates/: an SMS template code
    and parameters, a WeChat template id and fields…), empty when the notification has
    none; ``priority`` is ``critical`` or None; ``devices`` are the push channel's
    recipients (``recipient`` then names them all).
    """

    notification_id: str
    channel: str
    user: str
    recipient: Recipient
    title: str
    body: str = ""
    category: str = "general"
    data: Mapping[str, Any] = field(default_factory=dict)
    created_at: int
    attempt: int = 1
    variant: Mapping[str, Any] = field(default_factory=dict)
    priority: str | None = None
    devices: tuple[Device, ...] = ()

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.notification_id, self.channel, self.recipient.address)

    @property
    def critical(self) -> bool:
        return self.priority == "critical"


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """What happened to one send; see the module docstring for the outcomes.

    ``code`` is the provider's own code when there is one (HTTP status, SMTP
    reply code, WeChat errcode, Twilio error code, Alibaba Cloud's ``isv.…``);
    ``detail`` is a short reason fit for a status page, naming the provider's code;
    ``retry_after_s`` is the provider's minimum delay. ``stale``: device ids whose
    tokens the provider reported invalid; ``remaining``: the device ids a retry
    should still reach (None: all of them).
    """

    outcome: Outcome
    provider_id: str | None = None
    code: int | str | None = None
    detail: str = ""
    retry_after_s: float | None = None
    stale: tuple[str, ...] = ()
    remaining: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT

    @property
    def retryable(self) -> bool:
        return self.outcome is Outcome.RETRY

    @classmethod
    def sent(cls, provider_id: str | None = None, code: int | str | None = None) -> SendResult:
        return cls(outcome=Outcome.SENT, provider_id=provider_id, code=code)

    @classmethod
    def retry(
        cls, detail: str, *, code: int | str | None = None, retry_after_s: float | None = None
    ) -> SendResult:
        return cls(
            outcome=Outcome.RETRY, code=code, detail=_clip(detail), retry_after_s=retry_after_s
        )

    @classmethod
    def failed(cls, detail: str, *, code: int | str | None = None,
               stale: tuple[str, ...] = ()) -> SendResult:
        return cls(outcome=Outcome.FAILED, code=code, detail=_clip(detail), stale=stale)

    @classmethod
    def disabled(cls, detail: str, *, code: int | str | None = None) -> SendResult:
        return cls(outcome=Outcome.DISABLED, code=code, detail=_clip(detail))


@runtime_checkable
class Channel(Protocol):
    """A delivery channel; one instance per worker process, safe for concurrent sends."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; never raises for a provider outcome (see module doc)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the channel is unusable afterwards."""
        ...


@runtime_checkable
class Provider(Channel, Protocol):
    """One provider of a channel (README "Adding a provider"): a :class:`Channel` that
    also says which provider it is and which profile field holds its recipients.

    ``name`` is the channel it serves (``sms``), ``provider`` its registry name
    (``aliyun``), ``contact`` the profile field of its recipient (``phone``; WeCom:
    ``wecom_userid``; push: ``devices``). One instance per worker process; ``send``
    is called concurrently, never raises for a provider outcome (timeouts and
    connection errors are ``retry``), and names the provider's own error code in
    the result's ``code`` and ``detail``.
    """

    provider: str
    contact: str


# ------------------------------------------------------------------ helpers


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    None when absent or unparseable; clamped to [0, MAX_RETRY_AFTER_S].
    """
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def classify_http(status: int, retry_after: str | None, detail: str) -> SendResult | None:
    """The result for a non-2xx HTTP status (None for 2xx: the caller parses success).

    429 and 5xx are retryable (Retry-After honoured); 410 is ``failed`` here and
    the webhook channel turns it into ``disabled``; 3xx and other 4xx are
    permanent (redirects are not followed: fix the URL instead).
    """
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500:
        return SendResult.retry(
            f"HTTP {status}: {detail}", code=status, retry_after_s=parse_retry_after(retry_after)
        )
    return SendResult.failed(f"HTTP {status}: {detail}", code=status)


def error_detail(exc: BaseException) -> str:
    """A short description of a transport error (timeouts have empty messages)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class HttpSession:
    """One aiohttp ClientSession per channel, created inside the running loop.

    The connector is bounded (``limit`` connections) and DNS answers are cached;
    every request is bounded by ``timeout_s`` in total.
    """

    def __init__(self, timeout_s: float, limit: int, user_agent: str = "Herald/0.1") -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = limit
        self._headers = {"User-Agent": user_agent}
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# Transport failures every HTTP channel maps to ``retry``.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, aiohttp.ClientError, OSError)
