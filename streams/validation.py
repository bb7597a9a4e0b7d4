"""Validation of events before they are appended: limits and shapes.

Raises :class:`ValidationError` whose ``field`` names the failing field (dotted
path, e.g. ``data`` or ``preferences.billing.sms``). The producer validates every
event, so nothing past these rules ever reaches the log from Herald's own code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from herald.streams import tenants
from herald.streams.errors import ValidationError
from herald.streams.events import (
    BULK_ACTIONS,
    CRITICAL,
    TEMPLATES_USER,
    WORKFLOWS_USER,
    BusinessEventReceived,
    ContactChanged,
    DeliveryEvent,
    DeviceRegistered,
    DeviceRemoved,
    DigestItemAdded,
    Envelope,
    InboxBulkMarked,
    NotificationContent,
    NotificationScheduled,
    NotificationSnoozed,
    NotificationWoke,
    Payload,
    PreferencesChanged,
    ProfileChanged,
    ScheduleCancelled,
    TemplateRegistered,
    TokensRevoked,
    TopicSubscribed,
    TopicUnsubscribed,
    WorkflowRegistered,
    WorkflowTriggered,
)
from herald.streams.ids import is_id
from herald.streams.settings import Settings

CHANNELS = ("in_app", "webhook", "sms", "wechat", "email", "push")
PRIORITIES = ("normal", CRITICAL)
PLATFORMS = ("fcm", "apns")
CONTACT_KINDS = ("phone", "email", "wechat_openid", "wecom_userid", "locale")
RESERVED_USERS = frozenset({"me"})
# A user id: any UTF-8 text of 1-256 bytes without control characters (C0, DEL, C1) or
# lone surrogates; hash-tagged by partition in every key (streams/keys.py), so any
# character is safe in a key name, and URL-encoded in paths.
USER_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,256}")
USER_MAX_BYTES = 256
USER_RULE = "must be 1-256 bytes of UTF-8 without control characters"
# Users that only Herald itself appends for (refused on every API path and CLI).
SYSTEM_USERS = frozenset({TEMPLATES_USER, WORKFLOWS_USER})
KEY_RE = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,200}$")
BUSINESS_EVENT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
CATEGORY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TOPIC_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL_RE = re.compile(r"^[^@\x00-\x20\x7f-\x9f]{1,64}@[^@\x00-\x20\x7f-\x9f]{1,255}"
                      r"\.[^@\x00-\x20\x7f-\x9f]{1,63}$")
# no control character or space; spelled out rather than \s, which Python and the
# JSON Schema (ECMA) regexes the OpenAPI document uses read differently (\x1c-\x1f)
URL_RE = re.compile(r"^https?://[^\x00-\x20\x7f]{1,2000}$")
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")
TEMPLATE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
DEVICE_ID_RE = re.compile(r"^[0-9a-f]{16}$")
HHMM_RE = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_TOKEN = 4096  # longest device token (FCM's are ~160 characters, APNs' 64 hex)
MAX_TEMPLATE_BYTES = 32 * 1024  # a template definition, encoded
# The longest delay the API accepts for a schedule; cancel tombstones and markers live
# at least this long (streams/schedule_cancel.py, consumers/schedule/projection.py).
SCHEDULE_HORIZON_MS = 366 * 86_400_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits of one event (from settings)."""

    max_title: int = 200
    max_body: int = 5000
    max_data_bytes: int = 16 * 1024
    max_event_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_event_bytes=settings.max_event_bytes,
            max_data_bytes=min(16 * 1024, settings.max_event_bytes),
        )


def check_user(user: Any, field: str = "user", *, scoped: bool = True,
               system: bool = True) -> str:
    """A valid user id; ``scoped``: a tenant's user (``<tenant>\x1f<user>``,
    streams/tenants.py) is valid too (what Herald writes; requests give plain ids);
    ``system``: Herald's own users (``~templates``) too, which the log carries and the
    API never names."""
    if system and user in SYSTEM_USERS:
        return str(user)
    if scoped and isinstance(user, str) and tenants.SEP in user:
        tenant, plain = tenants.split(user)
        if not tenants.is_tenant(tenant):
            raise ValidationError(field, "names no valid tenant before its separator")
        check_user(plain, field, scoped=False, system=False)
        return user
    if (not isinstance(user, str) or not USER_RE.fullmatch(user)
            or len(user.encode()) > USER_MAX_BYTES):
        raise ValidationError(field, USER_RULE)
    if user in SYSTEM_USERS:
        raise ValidationError(field, f"{user!r} is reserved")
    if user in RESERVED_USERS:
        raise ValidationError(field, f"{user!r} is reserved")
    return user


def check_key(value: Any, field: str) -> str:
    """Idempotency, cancel and digest keys: 1-200 printable characters, no spaces."""
    if not isinstance(value, str) or not KEY_RE.fullmatch(value):
        raise ValidationError(field, "must be 1-200 characters of A-Z a-z 0-9 _ . : @ / + = -")
    return value


def check_id(value: Any, field: str = "notification_id") -> str:
    if not isinstance(value, str) or not is_id(value):
        raise ValidationError(field, "is not a Herald notification id")
    return value


# A character that is not white space, as Python's str.isspace() sees it, spelled out:
# the OpenAPI document's patterns are ECMA regexes, whose \S lets \x1c-\x1f and \x85 by.
NONBLANK = r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NONBLANK_RE = re.compile(NONBLANK)


def _check_text(value: str, field: str, limit: int, required: bool) -> None:
    if required and not _NONBLANK_RE.search(value):
        raise ValidationError(field, "must not be empty")
    if len(value) > limit:
        raise ValidationError(field, f"is longer than {limit} characters")


def _check_content(p: NotificationContent, limits: Limits, encoded_size: int | None,
                   sealed: bool) -> None:
    # A sealed payload's title is blank: it was checked before it was sealed.
    _check_text(p.title, "title", limits.max_title, required=not sealed)
    _check_text(p.body, "body", limits.max_body, required=False)
    if not CATEGORY_RE.fullmatch(p.category):
        raise ValidationError("category", "must be 1-64 characters of A-Z a-z 0-9 _ . -")
    # The whole event's encoded size bounds the data's: measure data alone only when needed.
    if p.data and (encoded_size is None or encoded_size > limits.max_data_bytes):
        _check_data_size(p.data, limits)
    if not p.channels:
        raise ValidationError("channels", "must name at least one channel")
    for i, channel in enumerate(p.channels):
        if channel not in CHANNELS:
            raise ValidationError(
                f"channels.{i}", f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}"
            )
    if len(set(p.channels)) != len(p.channels):
        raise ValidationError("channels", "names a channel twice")
    if p.notification_id is not None:
        check_id(p.notification_id)
    for name, address in p.recipients.items():
        if name not in CHANNELS or not isinstance(address, str) or len(address) > 2000:
            raise ValidationError(f"recipients.{name}", "must be a known channel and an address")
    if p.priority is not None and p.priority not in PRIORITIES:
        raise ValidationError("priority", f"must be one of {', '.join(PRIORITIES)}")
    if p.template is not None:
        ref = p.template
        locale = str(ref.get("locale", ""))
        if not (TEMPLATE_ID_RE.fullmatch(str(ref.get("id", ""))) and type(ref.get("version"))
                is int and (locale == "default" or LOCALE_RE.fullmatch(locale))):
            raise ValidationError("template", "must be {id, version, locale} of a template")
    for name in p.variants or {}:
        if name not in CHANNELS:
            raise ValidationError(f"variants.{name}", "must name a channel")


def _check_data_size(data: dict[str, Any], limits: Limits) -> None:
    try:
        size = len(msgpack.packb(data, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("data", f"cannot be stored: {exc}") from exc
    if size > limits.max_data_bytes:
        raise ValidationError(
            "data", f"is {size} bytes encoded; the limit is {limits.max_data_bytes}"
        )


def _check_preferences(p: PreferencesChanged) -> None:
    if len(p.preferences) > 200:
        raise ValidationError("preferences", "names more than 200 categories")
    for category, channels in p.preferences.items():
        if category != "*" and not CATEGORY_RE.fullmatch(str(category)):
            raise ValidationError(f"preferences.{category}", "is not a valid category")
        if not isinstance(channels, dict):
            raise ValidationError(f"preferences.{category}", "must map channels to true/false")
        for channel, enabled in channels.items():
            if channel not in CHANNELS:
                raise ValidationError(f"preferences.{category}.{channel}", "unknown channel")
            if not isinstance(enabled, bool):
                raise ValidationError(f"preferences.{category}.{channel}", "must be true or false")
    if p.quiet_hours is not None:
        _check_quiet_hours(p.quiet_hours)


def _check_quiet_hours(quiet: dict[str, str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when quiet hours are set

    if set(quiet) != {"start", "end", "timezone"}:
        raise ValidationError("quiet_hours", "needs exactly start, end and timezone")
    for name in ("start", "end"):
        if not isinstance(quiet[name], str) or not HHMM_RE.fullmatch(quiet[name]):
            raise ValidationError(f"quiet_hours.{name}", "must be HH:MM (24-hour)")
    try:
        ZoneInfo(str(quiet["timezone"]))
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError("quiet_hours.timezone", "is not an IANA time zone") from exc


_CONTACT_RULES = {"phone": PHONE_RE, "email": EMAIL_RE, "webhook_url": URL_RE,
                  "locale": LOCALE_RE}


def _check_contact_value(name: str, value: str, field: str) -> None:
    rule = _CONTACT_RULES.get(name)
    if rule is not None:
        if not rule.fullmatch(value):
            raise ValidationError(field, f"is not a valid {name.replace('_', ' ')}"
                                  + (" (E.164, e.g. +8613800138000)" if name == "phone" else ""))
    elif not 1 <= len(value) <= 256:
        raise ValidationError(field, "must be 1-256 characters")


def _check_profile(p: ProfileChanged) -> None:
    for name in ("phone", "email", "webhook_url", "wechat_openid", "webhook_secret",
                 "wecom_userid", "locale"):
        value = getattr(p, name)
        if value is not None:
            _check_contact_value(name, value, name)


def _check_contact(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if p.kind not in CONTACT_KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(CONTACT_KINDS)}")
    if p.value is not None and not (sealed and p.value == ""):
        _check_contact_value(p.kind, p.value, "value")


def _check_device(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if not DEVICE_ID_RE.fullmatch(p.device_id):
        raise ValidationError("device_id", "must be 16 hex digits")
    if isinstance(p, DeviceRegistered):
        if p.platform not in PLATFORMS:
            raise ValidationError("platform", f"must be one of {', '.join(PLATFORMS)}")
        if not sealed and not 1 <= len(p.token) <= MAX_TOKEN:
            raise ValidationError("token", f"must be 1-{MAX_TOKEN} characters")
        if p.app is not None and not KEY_RE.fullmatch(p.app):
            raise ValidationError("app", "must be 1-200 characters of A-Z a-z 0-9 _ . : @ / + = -")
    elif len(p.reason) > 500:
        raise ValidationError("reason", "is longer than 500 characters")


def _check_versioned(field: str, name: str, version: int) -> None:
    """The id and version of a versioned definition (a template, a workflow)."""
    if not TEMPLATE_ID_RE.fullmatch(name):
        raise ValidationError(field, "must be 1-64 of a-z 0-9 _ . - (lowercase)")
    if version < 1:
        raise ValidationError("version", "must be at least 1")


def _check_definition(definition: Any) -> None:
    """A definition storable as it is, within :data:`MAX_TEMPLATE_BYTES` encoded."""
    try:
        size = len(msgpack.packb(definition, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("definition", f"cannot be stored: {exc}") from exc
    if size > MAX_TEMPLATE_BYTES:
        raise ValidationError("definition", f"is {size} bytes encoded; the limit is "
                              f"{MAX_TEMPLATE_BYTES}")


def _check_template(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    _check_versioned("template_id", p.template_id, p.version)
    _check_definition(p.definition)


def _check_workflow(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    _check_versioned("workflow_key", p.workflow_key, p.version)
    if isinstance(p, WorkflowRegistered):
        _check_definition(p.definition)
    else:
        if p.cancel_key is not None:
            check_key(p.cancel_key, "cancel_key")
        if not sealed:
            _check_data_size(p.data, limits)


def _check_business(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if not BUSINESS_EVENT_RE.fullmatch(p.name):
        raise ValidationError("name", "must be 1-100 of A-Z a-z 0-9 _ . : -")
    if not sealed:
        _check_data_size(p.data, limits)


def _check_scheduled(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if p.cancel_key is not None:
        check_key(p.cancel_key, "cancel_key")


def _check_digest_item(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    check_key(p.digest_key, "digest_key")


def _check_cancel(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if p.cancel_key is None and p.notification_id is None:
        raise ValidationError("cancel_key", "a cancel needs a cancel_key or a notification_id")
    if p.cancel_key is not None:
        check_key(p.cancel_key, "cancel_key")


def _check_revoked(p: TokensRevoked) -> None:
    if not 0 <= p.before < 2**53:
        raise ValidationError("before", "must be a time in ms since the epoch")


def _check_bulk(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if p.action not in BULK_ACTIONS:
        raise ValidationError("action", f"must be one of {', '.join(BULK_ACTIONS)}")
    if p.category is not None and not CATEGORY_RE.fullmatch(p.category):
        raise ValidationError("category", "must be 1-64 characters of A-Z a-z 0-9 _ . -")


def check_topic(value: Any, field: str = "topic") -> str:
    if not isinstance(value, str) or not TOPIC_RE.fullmatch(value):
        raise ValidationError(field, "must be 1-128 characters of A-Z a-z 0-9 _ . : -")
    return value


def _check_topic(p: Any) -> None:
    check_topic(p.topic)


def _check_until(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if not 0 <= p.until < 10**15:
        raise ValidationError("until", "must be a time in milliseconds")


def _check_delivery(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    if p.channel not in CHANNELS:
        raise ValidationError("channel", f"unknown channel {p.channel!r}")


def _check_notification_id(p: Any, limits: Limits, encoded_size: int | None, sealed: bool) -> None:
    nid = getattr(p, "notification_id", None)
    if nid is not None:
        check_id(nid)


Check = Callable[[Any, Limits, "int | None", bool], None]
_RULES: tuple[tuple[type, Check], ...] = (  # in the order they run
    (NotificationContent, _check_content),
    (NotificationScheduled, _check_scheduled),
    (DigestItemAdded, _check_digest_item),
    (ScheduleCancelled, _check_cancel),
    (PreferencesChanged, lambda p, limits, size, sealed: _check_preferences(p)),
    (ProfileChanged, lambda p, limits, size, sealed: _check_profile(p)),
    (ContactChanged, _check_contact),
    (DeviceRegistered, _check_device),
    (DeviceRemoved, _check_device),
    (TemplateRegistered, _check_template),
    (WorkflowRegistered, _check_workflow),
    (WorkflowTriggered, _check_workflow),
    (BusinessEventReceived, _check_business),
    (DeliveryEvent, _check_delivery),
    (TokensRevoked, lambda p, limits, size, sealed: _check_revoked(p)),
    (InboxBulkMarked, _check_bulk),
    (TopicSubscribed, lambda p, limits, size, sealed: _check_topic(p)),
    (TopicUnsubscribed, lambda p, limits, size, sealed: _check_topic(p)),
    (NotificationSnoozed, _check_until),
    (NotificationWoke, _check_until),
)
_CHECKS: dict[type, tuple[Check, ...]] = {}  # per payload class, built on first use


def validate_payload(payload: Payload, limits: Limits, encoded_size: int | None = None, *,
                     sealed: bool = False) -> None:
    """Check one payload's fields; raises ValidationError naming the field.

    ``sealed``: the payload's personal fields are blank (streams/sealing.py), checked
    before they were sealed."""
    checks = _CHECKS.get(type(payload))
    if checks is None:
        cls = type(payload)
        checks = _CHECKS[cls] = (*(check for base, check in _RULES if issubclass(cls, base)),
                                 _check_notification_id)
    for check in checks:
        check(payload, limits, encoded_size, sealed)


def validate_envelope(envelope: Envelope, encoded_size: int, limits: Limits) -> None:
    """Check an envelope and its encoded size; raises ValidationError."""
    check_user(envelope.user)
    if (envelope.user == TEMPLATES_USER) != isinstance(envelope.payload, TemplateRegistered):
        raise ValidationError("user", f"templates are events of {TEMPLATES_USER!r}, and only "
                              "templates are")
    if (envelope.user == WORKFLOWS_USER) != isinstance(envelope.payload, WorkflowRegistered):
        raise ValidationError("user", f"workflow definitions are events of {WORKFLOWS_USER!r}, "
                              "and only they are")
    if envelope.idempotency_key is not None:
        check_key(envelope.idempotency_key, "idempotency_key")
    if envelope.correlation is not None:
        check_key(envelope.correlation, "correlation")
    validate_payload(envelope.payload, limits, encoded_size,
                     sealed=envelope.sealed is not None)
    if encoded_size > limits.max_event_bytes:
        raise ValidationError(
            "event", f"is {encoded_size} bytes encoded; the limit is {limits.max_event_bytes}"
        )
