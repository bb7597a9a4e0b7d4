"""Delivery projections: preferences, profile and per-notification delivery status.

Pure functions ``event → writes`` (plain ``("call", COMMAND, key, *args)`` ops, see
consumers/projection/inbox.py), joined by consumers/projection/registry.py through
:data:`PROJECTIONS` (and :func:`project_created_status`, which follows the inbox's
projection of a created notification). They read nothing but the event, so replay
rebuilds exactly what live built.

State they build (keys in streams/keys.py, all in the event's partition):

- ``preferences`` hash of a user: ``prefs`` = packed ``{category: {channel: bool}}``
  (replaced whole by each PreferencesChanged), ``quiet`` = packed quiet hours (when
  set), ``ts`` = event time (ms). No expiry.
- ``profile`` hash of a user: the ProfileChanged fields that are set (or, sealed,
  ``s``: the sealed addresses, see streams/sealing.py; ``locale`` is never sealed),
  ``ts``; per ContactChanged since then ``c:<kind>`` (the value in clear, ``""`` when
  removed) or ``cs:<kind>`` (the value sealed) — newer than anything in ``s``; and
  one ``off:<channel>:<address digest>`` field (ms) per endpoint that asked to be
  disabled (webhook 410, recorded as a final DeliveryFailed whose detail starts
  with :func:`disabled_detail`'s prefix). A ProfileChanged replaces the hash, so
  re-registering a profile re-enables its endpoints. No expiry.
- ``devices`` hash of a user: per device id ``<id>:p`` platform, ``<id>:t`` token (or,
  sealed, ``<id>:s``), ``<id>:a`` app (when set), ``<id>:ts`` registered (ms). A
  DeviceRemoved deletes the device's fields. No expiry; bounded by HERALD_MAX_DEVICES
  at registration (api/routes_devices.py).
- ``status`` hash of a notification: ``u`` user, ``ts`` created (ms), ``ch``
  channels (comma-separated, in_app included), ``c`` category, ``t`` title (or ``s``,
  the sealed title), ``x``
  expires_at (ms, when set), and per push channel ``<ch>:s`` state (pending, sent,
  failed, skipped, expired), ``<ch>:n`` attempts made, ``<ch>:t`` last change (ms),
  ``<ch>:la`` last attempt started (ms), ``<ch>:ok`` sent at (ms), ``<ch>:e`` last
  error or reason, ``<ch>:next`` next attempt due (ms, while a retry waits).
  Written only for notifications that name a push channel; every write sets
  ``PEXPIREAT`` event time + ``HERALD_STATUS_TTL`` (deterministic: replaying an
  old log gives the same, possibly already expired, keys).

Guarantee: writes are plain HSET/HDEL/DEL/PEXPIREAT, so the projector applies
each event once (checkpoint) and in log order; a state never depends on wall
clock time.
"""

from __future__ import annotations

import hashlib
from typing import Any

from herald.consumers.errors import ProjectionError
from herald.consumers.projection.base import Context, Projection, Write, checked_id
from herald.streams import codec
from herald.streams.events import (
    ContactChanged,
    DeliveryAttempted,
    DeliveryEvent,
    DeliveryExpired,
    DeliveryFailed,
    DeliverySkipped,
    DeliverySucceeded,
    DeviceRegistered,
    DeviceRemoved,
    Envelope,
    NotificationCreated,
    PreferencesChanged,
    ProfileChanged,
)

IN_APP = "in_app"
PENDING, SENT, FAILED, SKIPPED, EXPIRED = "pending", "sent", "failed", "skipped", "expired"
STATES = (PENDING, SENT, FAILED, SKIPPED, EXPIRED)
PROFILE_KEYS = ("phone", "email", "wechat_openid", "webhook_url", "webhook_secret",
                "wecom_userid", "locale")
CONTACT_PREFIX, SEALED_CONTACT_PREFIX = "c:", "cs:"  # profile fields of ContactChanged
DEVICE_FIELDS = ("p", "t", "s", "a", "ts")  # per device id: <id>:<field>
DISABLED_FIELD = "off"  # profile field prefix: off:<channel>:<digest>
_DISABLED_PREFIX = "disabled "


def address_digest(address: str) -> str:
    """16 hex of blake2b(address): names an endpoint without writing it in clear.

    The same digest as the tail of ``consumers.channels.base.idempotency_key``.
    """
    return hashlib.blake2b(address.encode("utf-8"), digest_size=8).hexdigest()


def disabled_detail(address: str, reason: str) -> str:
    """The DeliveryFailed detail that disables ``address`` (see the module doc)."""
    return f"{_DISABLED_PREFIX}{address_digest(address)}: {reason}"


def parse_disabled(detail: str) -> str | None:
    """The endpoint digest a DeliveryFailed detail disables, or None."""
    if not detail.startswith(_DISABLED_PREFIX):
        return None
    digest = detail[len(_DISABLED_PREFIX) : len(_DISABLED_PREFIX) + 16]
    return digest if len(digest) == 16 else None


def disabled_field(channel: str, digest: str) -> str:
    return f"{DISABLED_FIELD}:{channel}:{digest}"


def _expire_at(env: Envelope, ctx: Context) -> str:
    return str(env.time + ctx.status_ttl_ms)


# ------------------------------------------------------------- preferences, profile


def project_preferences(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: PreferencesChanged = env.payload  # type: ignore[assignment]
    key = ctx.keys.preferences(ctx.partition, env.user, ctx.ns)
    fields = ["prefs", codec.pack_value(p.preferences), "ts", str(env.time)]
    if p.quiet_hours is not None:
        fields += ["quiet", codec.pack_value(p.quiet_hours)]
    return [("call", "DEL", key), ("call", "HSET", key, *fields)]


def project_profile(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: ProfileChanged = env.payload  # type: ignore[assignment]
    key = ctx.keys.profile(ctx.partition, env.user, ctx.ns)
    fields: list[Any] = ["ts", str(env.time)]
    for name in PROFILE_KEYS:
        value = getattr(p, name)
        if value is not None:
            fields += [name, value]
    if env.sealed is not None:
        fields += ["s", env.sealed]  # the addresses, sealed (streams/sealing.py)
    return [("call", "DEL", key), ("call", "HSET", key, *fields)]


def project_contact(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: ContactChanged = env.payload  # type: ignore[assignment]
    key = ctx.keys.profile(ctx.partition, env.user, ctx.ns)
    plain, sealed = f"{CONTACT_PREFIX}{p.kind}", f"{SEALED_CONTACT_PREFIX}{p.kind}"
    if env.sealed is not None:
        return [("call", "HSET", key, sealed, env.sealed), ("call", "HDEL", key, plain)]
    return [("call", "HSET", key, plain, p.value or ""), ("call", "HDEL", key, sealed)]


def project_device(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: DeviceRegistered = env.payload  # type: ignore[assignment]
    key = ctx.keys.devices(ctx.partition, env.user, ctx.ns)
    d = p.device_id
    fields: list[Any] = [f"{d}:p", p.platform, f"{d}:ts", str(env.time)]
    fields += [f"{d}:s", env.sealed] if env.sealed is not None else [f"{d}:t", p.token]
    if p.app:
        fields += [f"{d}:a", p.app]
    return [("call", "HDEL", key, *(f"{d}:{f}" for f in DEVICE_FIELDS)),
            ("call", "HSET", key, *fields)]


def project_device_removed(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: DeviceRemoved = env.payload  # type: ignore[assignment]
    key = ctx.keys.devices(ctx.partition, env.user, ctx.ns)
    return [("call", "HDEL", key, *(f"{p.device_id}:{f}" for f in DEVICE_FIELDS))]


def project_erased(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """The user's preferences, profile and devices go (their delivery statuses expire)."""
    k, part = ctx.keys, ctx.partition
    return [("call", "DEL", k.preferences(part, env.user, ctx.ns)),
            ("call", "DEL", k.profile(part, env.user, ctx.ns)),
            ("call", "DEL", k.devices(part, env.user, ctx.ns))]


# ------------------------------------------------------------------------- status


def project_created_status(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """Every push channel of a new notification starts ``pending`` (none: no writes)."""
    p: NotificationCreated = env.payload  # type: ignore[assignment]
    push = [ch for ch in p.channels if ch != IN_APP]
    if not push:
        return []
    nid = checked_id(p.notification_id) if p.notification_id else env.id
    key = ctx.keys.status(ctx.partition, nid, ctx.ns)
    fields: list[Any] = ["u", env.user, "ts", str(env.time), "ch", ",".join(p.channels),
                         "c", p.category, "t", p.title]
    if env.sealed is not None:
        fields += ["s", env.sealed]  # the title, sealed (streams/sealing.py)
    if p.expires_at is not None:
        fields += ["x", str(p.expires_at)]
    for ch in push:
        fields += [f"{ch}:s", PENDING, f"{ch}:n", "0", f"{ch}:t", str(env.time)]
    return [("call", "HSET", key, *fields), ("call", "PEXPIREAT", key, _expire_at(env, ctx))]


def project_delivery(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: DeliveryEvent = env.payload  # type: ignore[assignment]
    nid, ch, now = checked_id(p.notification_id), p.channel, str(env.time)
    key = ctx.keys.status(ctx.partition, nid, ctx.ns)
    fields: list[str] = ["u", env.user, f"{ch}:n", str(p.attempt), f"{ch}:t", now]
    drop = [f"{ch}:next"]
    writes: list[Write] = []
    if isinstance(p, DeliveryAttempted):
        fields += [f"{ch}:s", PENDING, f"{ch}:la", now]
    elif isinstance(p, DeliverySucceeded):
        fields += [f"{ch}:s", SENT, f"{ch}:ok", now]
    elif isinstance(p, DeliveryFailed):
        fields += [f"{ch}:s", FAILED if p.final else PENDING, f"{ch}:e", p.detail]
        if not p.final and p.retry_at is not None:
            fields += [f"{ch}:next", str(p.retry_at)]
            drop = []
        digest = parse_disabled(p.detail) if p.final else None
        if digest is not None:
            profile = ctx.keys.profile(ctx.partition, env.user, ctx.ns)
            writes.append(("call", "HSET", profile, disabled_field(ch, digest), now))
    elif isinstance(p, DeliverySkipped | DeliveryExpired):
        state = SKIPPED if isinstance(p, DeliverySkipped) else EXPIRED
        fields += [f"{ch}:s", state, f"{ch}:e", p.detail]
    else:  # pragma: no cover - the table below names every subclass
        raise ProjectionError(f"invalid: no status projection for {env.type}")
    writes.insert(0, ("call", "HSET", key, *fields))
    if drop:
        writes.insert(1, ("call", "HDEL", key, *drop))
    writes.append(("call", "PEXPIREAT", key, _expire_at(env, ctx)))
    return writes


PROJECTIONS: dict[str, Projection] = {
    PreferencesChanged.TYPE: project_preferences,
    ProfileChanged.TYPE: project_profile,
    ContactChanged.TYPE: project_contact,
    DeviceRegistered.TYPE: project_device,
    DeviceRemoved.TYPE: project_device_removed,
    DeliveryAttempted.TYPE: project_delivery,
    DeliverySucceeded.TYPE: project_delivery,
    DeliveryFailed.TYPE: project_delivery,
    DeliverySkipped.TYPE: project_delivery,
    DeliveryExpired.TYPE: project_delivery,
}
