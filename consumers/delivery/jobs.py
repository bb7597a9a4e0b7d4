"""Delivery jobs: one notification on one channel, and the events that record it.

A :class:`Job` is everything needed to send (and re-send) one notification on one
channel: its content, the log position it came from, the recipient fixed at the
first decision, and ``attempt`` — the number of the next send (from 1). Jobs that
wait for a retry or a rate-limit slot are packed into Redis (retry_queue.py);
nothing about a job lives only in memory.

Outcome events carry deterministic producer idempotency keys, so a worker that
crashed and a worker that took over record each fact once:

- ``d:<nid>:<channel>:<n>:a`` — DeliveryAttempted of attempt n (before sending);
- ``d:<nid>:<channel>:<n>:o`` — the one outcome of step n: DeliverySucceeded,
  DeliveryFailed (``final`` or with ``retry_at``), DeliverySkipped or
  DeliveryExpired. A job whose step-n outcome key exists is finished for step n.

``attempt`` in events: Attempted/Succeeded/Failed carry n; Skipped and Expired,
decided instead of step n, carry n - 1 (the attempts actually made).

- ``d:<nid>:<channel>:<n>:rm:<device id>`` — DeviceRemoved of a device whose token the
  provider reported invalid at step n (the push channel).

A push job carries the devices it is still to reach (``devices``, narrowed to the
ones left after a partial send), a templated one its rendered ``variants``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from herald.consumers.channels.base import Device, OutboundMessage, Recipient
from herald.streams import codec
from herald.streams.crypto import DataKey
from herald.streams.errors import CodecError
from herald.streams.events import (
    DeliveryAttempted,
    DeliveryEvent,
    DeliveryExpired,
    DeliveryFailed,
    DeliverySkipped,
    DeliverySucceeded,
    DeviceRemoved,
    Envelope,
    NotificationCreated,
    Payload,
)

CREATED_MARK = NotificationCreated.TYPE.encode()
JOB_VERSION = 3  # 1: content in clear; 2: content and recipient sealed (or absent: erased);
# 3: and the priority (variants and devices are among the sealed fields)

Recorded = tuple[str, Payload, str]
"""An event to append: (user, payload, idempotency key)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One notification on one channel (see the module doc)."""

    notification_id: str
    channel: str
    user: str
    position: str
    created_at: int
    title: str
    body: str = ""
    category: str = "general"
    data: Mapping[str, Any] = field(default_factory=dict)
    expires_at: int | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1
    address: str | None = None
    secret: str | None = None
    erased: bool = False  # the user's data key is gone: nothing to send (skipped)
    priority: str | None = None
    variants: Mapping[str, Any] | None = None
    devices: tuple[Device, ...] = ()

    @property
    def critical(self) -> bool:
        return self.priority == "critical"

    def expired(self, now_ms: int) -> bool:
        return self.expires_at is not None and now_ms >= self.expires_at

    def with_recipient(self, recipient: Recipient) -> Job:
        return replace(self, address=recipient.address, secret=recipient.secret)

    def with_devices(self, devices: tuple[Device, ...]) -> Job:
        """A push job addressed to ``devices`` (its address names them, by id)."""
        return replace(self, devices=devices, address=",".join(d.id for d in devices))

    def next_attempt(self, remaining: tuple[str, ...] | None = None) -> Job:
        """The job of the next attempt; ``remaining``: the only devices left to reach."""
        job = replace(self, attempt=self.attempt + 1)
        if remaining is not None and self.devices:
            job = job.with_devices(tuple(d for d in self.devices if d.id in remaining))
        return job

    def message(self) -> OutboundMessage:
        """The message of this attempt; needs the recipient (``address``)."""
        if self.address is None:
            raise ValueError("a job needs its recipient before it is sent")
        variant = (self.variants or {}).get(self.channel)
        return OutboundMessage(
            notification_id=self.notification_id, channel=self.channel, user=self.user,
            recipient=Recipient(address=self.address, secret=self.secret), title=self.title,
            body=self.body, category=self.category, data=self.data,
            created_at=self.created_at, attempt=self.attempt,
            variant=variant if isinstance(variant, Mapping) else {},
            priority=self.priority, devices=self.devices,
        )

    # ---------------------------------------------------------------- events
    def key(self, kind: str) -> str:
        """Idempotency key of this step's ``a`` (attempted) or ``o`` (outcome) event."""
        return f"d:{self.notification_id}:{self.channel}:{self.attempt}:{kind}"

    def attempted(self) -> Recorded:
        return self.user, self._event(DeliveryAttempted, self.attempt), self.key("a")

    def succeeded(self, detail: str = "") -> Recorded:
        return self.user, self._event(DeliverySucceeded, self.attempt, detail), self.key("o")

    def failed(self, detail: str, retry_at: int | None) -> Recorded:
        event = DeliveryFailed(notification_id=self.notification_id, channel=self.channel,
                               attempt=self.attempt, detail=detail,
                               final=retry_at is None, retry_at=retry_at)
        return self.user, event, self.key("o")

    def skipped(self, reason: str) -> Recorded:
        return self.user, self._event(DeliverySkipped, self.attempt - 1, reason), self.key("o")

    def expired_event(self) -> Recorded:
        detail = "expired before it could be sent"
        return self.user, self._event(DeliveryExpired, self.attempt - 1, detail), self.key("o")

    def device_removed(self, device_id: str, reason: str) -> Recorded:
        """The device ``device_id`` goes: its provider reported the token invalid."""
        return (self.user, DeviceRemoved(device_id=device_id, reason=reason[:500]),
                self.key(f"rm:{device_id}"))

    def _event(self, cls: type[DeliveryEvent], attempt: int, detail: str = "") -> DeliveryEvent:
        return cls(notification_id=self.notification_id, channel=self.channel, attempt=attempt,
                   detail=detail)

    # ----------------------------------------------------------------- packing
    # A job waiting in Redis (retry_queue.py) holds its content and recipient sealed
    # with the user's data key (streams/sealing.py), like everything personal at rest.
    _PERSONAL: ClassVar[tuple[str, ...]] = ("title", "body", "data", "overrides", "address",
                                            "secret", "variants", "devices")

    def pack(self, key: DataKey | None, *, sealing: bool = True) -> bytes:
        """The stored form: the personal fields sealed under ``key``; in clear when
        sealing is off; left out when sealing is on and there is no key (erased)."""
        fields = {name: getattr(self, name) for name in self._PERSONAL}
        fields["devices"] = [[d.id, d.platform, d.token, d.app, d.registered_at]
                             for d in self.devices]
        personal = codec.pack_value(fields)
        sealed = key.seal(personal, self.user.encode()) if key is not None and sealing else None
        plain = personal if not sealing else None
        return codec.pack_binary([
            JOB_VERSION, self.notification_id, self.channel, self.user, self.position,
            self.created_at, self.category, self.expires_at, self.attempt, sealed, plain,
            self.priority,
        ])

    @classmethod
    def unpack(cls, raw: bytes) -> tuple[Job, bytes | None]:
        """The job without its sealed fields, and the blob that holds them (None when
        they were stored in clear, or not at all: then the job is ``erased``). Raises
        CodecError for anything :meth:`pack` did not write."""
        values = codec.unpack_binary(raw)
        if not isinstance(values, list) or (values[:1], len(values)) not in (([2], 11),
                                                                              ([3], 12)):
            raise CodecError("malformed", "not a packed delivery job")
        (_, nid, channel, user, position, created_at, category, expires_at, attempt,
         sealed, plain) = values[:11]
        job = cls(notification_id=nid, channel=channel, user=user, position=position,
                  created_at=created_at, title="", category=category, expires_at=expires_at,
                  attempt=attempt, erased=sealed is None and plain is None,
                  priority=values[11] if len(values) > 11 else None)
        if plain is not None:
            job = job.with_personal(codec.unpack_value(plain))
        return job, sealed

    def with_personal(self, fields: Mapping[str, Any]) -> Job:
        """This job with the personal fields :meth:`pack` stored (a map, as packed)."""
        values = {name: fields[name] for name in self._PERSONAL if name in fields}
        if "devices" in values:
            values["devices"] = tuple(Device(*d) for d in values["devices"] or ())
        return replace(self, **values)


def might_concern(raw: bytes, channel_mark: bytes) -> bool:
    """Cheap pre-check on an entry's bytes: could it be a created event naming the channel?

    False means surely not (both strings appear verbatim in any such entry), so
    the entry is acked without decoding.
    """
    return CREATED_MARK in raw and channel_mark in raw


def job_for(env: Envelope, position: str, channel: str, *, erased: bool = False) -> Job | None:
    """The job ``channel`` has for a decoded (and opened) entry, or None when it names
    another channel. ``erased``: the entry's sealed fields can no longer be opened."""
    p = env.payload
    if not isinstance(p, NotificationCreated) or channel not in p.channels:
        return None
    return Job(
        notification_id=env.notification_id, channel=channel, user=env.user,
        position=position, created_at=env.time, title=p.title, body=p.body,
        category=p.category, data=p.data, expires_at=p.expires_at, overrides=p.recipients,
        erased=erased, priority=p.priority, variants=p.variants,
    )
