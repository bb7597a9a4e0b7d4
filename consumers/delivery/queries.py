"""Status by id, preferences and profile: the read side of delivery (API and CLI).

Every read is one MULTI together with the partition's view pointer, repeated if
``herald replay`` switched the namespace in between (consumers/projection/views.py).

A notification's document (JSON-ready)::

    {"id", "user", "category", "title", "body", "data", "created_at", "expires_at",
     "scheduled_for",
     "channels": {"in_app": {"state": "sent", "in_inbox": true, "read_at": ...},
                  "sms": {"state", "attempts", "last_error", "updated_at",
                          "last_attempt_at", "sent_at", "next_attempt_at"}}}

States of a push channel: ``pending`` (not decided yet, sending, or waiting for a
retry — then ``next_attempt_at`` is set), ``sent``, ``failed`` (final),
``skipped`` (opted out, no address, disabled endpoint: ``last_error`` says why),
``expired`` (its time-to-live passed first). ``in_app`` is ``sent`` once the
projector put it in the inbox (``in_inbox`` false after it was deleted or pushed
out by the inbox cap). A notification still waiting in the schedule has ``status``
``scheduled`` (that state on every channel) and ``scheduled_for`` set; once cancelled
(by its cancel key, or dropped by the scheduler) ``status`` is ``cancelled`` with
``cancelled_at``; any other has ``status`` ``created``. Push-channel statuses
expire HERALD_STATUS_TTL after their last change; body and data come from the
inbox item while it exists.
"""

from __future__ import annotations

from typing import Any

from herald.consumers.channels.base import PROFILE_FIELDS
from herald.consumers.delivery.projection import (
    IN_APP,
    PROFILE_KEYS,
    address_digest,
    disabled_field,
)
from herald.consumers.delivery.state import open_devices, open_profile
from herald.consumers.projection.queries import iso
from herald.consumers.projection.views import Views
from herald.streams import codec, positions
from herald.streams.connection import text
from herald.streams.errors import CodecError
from herald.streams.events import NotificationContent, NotificationCreated
from herald.streams.ids import is_id, partition_of
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.partitions import partition_for
from herald.streams.sealing import open_blob
from herald.streams.settings import Settings

ITEM_FIELDS = ("u", "c", "t", "b", "d", "ts", "r", "a", "s")
CHANNEL_FIELDS = {"attempts": "n", "last_error": "e", "updated_at": "t",
                  "last_attempt_at": "la", "sent_at": "ok", "next_attempt_at": "next"}
TIMES = {"updated_at", "last_attempt_at", "sent_at", "next_attempt_at"}


def _decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


class DeliveryQueries:
    """Read-only delivery views; one instance per process."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.views = Views(redis, settings)
        self.data_keys = KeyStore(redis, settings)

    async def _content(self, user: str, sealed: bytes | None) -> dict[str, Any]:
        """The sealed content fields of one of ``user``'s notifications ({} when none or
        erased)."""
        if not sealed:
            return {}
        return await open_blob(self.data_keys, user, sealed) or {}

    # ------------------------------------------------------------ notifications
    async def notification(self, notification_id: str) -> dict[str, Any] | None:
        """The notification and its per-channel status, or None when nothing is known."""
        if not is_id(notification_id):
            return None
        p = partition_of(notification_id)
        if p >= self.settings.partitions:
            return None
        k = self.keys

        def build(pipe: Any, ns: str) -> None:
            pipe.hgetall(k.status(p, notification_id, ns))
            pipe.hmget(k.item(p, notification_id, ns), *ITEM_FIELDS)
            pipe.get(k.scheduled(p, notification_id, ns))
            pipe.zscore(k.schedule(p, ns), notification_id)
            pipe.get(k.schedule_dropped(p, notification_id, ns))

        status_raw, item, scheduled, due, dropped = await self.views.snapshot(p, build)
        sealed_status = status_raw.pop(b"s", None)
        status = _decoded(status_raw)
        in_inbox = item[0] is not None
        if not status and not in_inbox:
            if dropped is not None:
                return _dropped(notification_id, dropped)
            return await self._scheduled(notification_id, scheduled, due)
        user = status.get("u") or text(item[0])
        content = await self._content(user, item[8] if in_inbox else sealed_status)
        doc: dict[str, Any] = {
            "id": notification_id,
            "user": user,
            "category": text(item[1]) if in_inbox else status.get("c", ""),
            "title": content.get("title", text(item[2]) if in_inbox else status.get("t", "")),
            "body": content.get("body", text(item[3])) if in_inbox else None,
            "data": content.get("data", codec.unpack_value(item[4]) if item[4] else {})
            if in_inbox else None,
            "status": "created",
            "created_at": iso(status.get("ts") or item[5]),
            "expires_at": iso(status.get("x")),
            "scheduled_for": None,
            "channels": {},
        }
        listed = status["ch"].split(",") if status.get("ch") else []
        if in_inbox or IN_APP in listed or not status:
            doc["channels"][IN_APP] = {"state": "sent", "in_inbox": in_inbox,
                                       "read_at": iso(item[6]) if in_inbox else None,
                                       "archived": item[7] == b"1"}
        names = [ch for ch in listed if ch != IN_APP]
        names += sorted({f.partition(":")[0] for f in status if f.endswith(":s")} - set(names))
        for ch in names:
            doc["channels"][ch] = _channel(status, ch)
        return doc

    # --------------------------------------------------------- users' settings
    async def preferences(self, user: str) -> dict[str, Any]:
        """``{"user", "preferences", "updated_at"}`` (empty preferences: all allowed)."""
        p = partition_for(user, self.settings.partitions)
        [raw] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hmget(self.keys.preferences(p, user, ns), "prefs", "ts",
                                           "quiet"))
        prefs: Any = {}
        quiet: Any = None
        try:
            prefs = codec.unpack_value(raw[0]) if raw[0] else {}
            quiet = codec.unpack_value(raw[2]) if raw[2] else None
        except CodecError:
            prefs, quiet = {}, None
        return {"user": user, "preferences": prefs if isinstance(prefs, dict) else {},
                "quiet_hours": quiet if isinstance(quiet, dict) else None,
                "updated_at": iso(raw[1])}

    async def devices(self, user: str) -> list[dict[str, Any]]:
        """The user's push devices, oldest first; a token is shown by its last 6
        characters only."""
        p = partition_for(user, self.settings.partitions)
        [raw] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hgetall(self.keys.devices(p, user, ns)))
        return [{"id": d.id, "platform": d.platform, "app": d.app,
                 "token_hint": "…" + d.token[-6:], "registered_at": iso(d.registered_at)}
                for d in await open_devices(self.data_keys, user, raw)]

    async def locale(self, user: str) -> str | None:
        """The user's locale (a contact's, set last, over the profile's), or None."""
        p = partition_for(user, self.settings.partitions)
        [raw] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hmget(self.keys.profile(p, user, ns), "locale",
                                           "c:locale"))
        chosen = raw[1] if raw[1] is not None else raw[0]
        return text(chosen) or None if chosen is not None else None

    async def profile(self, user: str) -> dict[str, Any]:
        """The user's addresses; the webhook secret is never shown, only whether it is set.

        ``disabled`` maps channels whose current address was disabled by its
        receiver to the time it happened.
        """
        p = partition_for(user, self.settings.partitions)
        [raw] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hgetall(self.keys.profile(p, user, ns)))
        fields = await open_profile(self.data_keys, user, raw)
        doc: dict[str, Any] = {"user": user}
        for name in PROFILE_KEYS:
            if name != "webhook_secret":
                doc[name] = fields.get(name)
        doc["webhook_secret_set"] = bool(fields.get("webhook_secret"))
        disabled = {}
        for channel, field_name in PROFILE_FIELDS.items():
            address = fields.get(field_name)
            mark = address and fields.get(disabled_field(channel, address_digest(address)))
            if mark:
                disabled[channel] = iso(mark)
        doc["disabled"] = disabled
        doc["updated_at"] = iso(fields.get("ts"))
        return doc


    async def _scheduled(self, notification_id: str, raw: Any, due: Any
                         ) -> dict[str, Any] | None:
        """A notification still in the schedule (its projected entry), if readable."""
        if raw is None:
            return None
        try:
            entry = codec.unpack_binary(raw)
            p = codec.payload_from_dict(NotificationCreated.TYPE, NotificationCreated.VERSION,
                                        entry["c"])
            user = str(entry["u"])
        except (CodecError, KeyError, TypeError):
            return None
        assert isinstance(p, NotificationContent)
        content = await self._content(user, entry.get("s"))
        cancelled = await self._cancelled_at(notification_id, user, entry)
        state = "scheduled" if cancelled is None else "cancelled"
        doc = {
            "id": notification_id, "user": user, "category": p.category,
            "title": content.get("title", p.title), "body": content.get("body", p.body),
            "data": content.get("data", p.data), "status": state, "created_at": None,
            "expires_at": iso(p.expires_at),
            "scheduled_for": iso(int(float(due))) if due is not None else None,
            "channels": {ch: {"state": state} for ch in p.channels},
        }
        if cancelled is not None:
            doc["cancelled_at"] = cancelled
        return doc

    async def _cancelled_at(self, notification_id: str, user: str, entry: dict[str, Any]
                            ) -> str | None:
        """When a cancel by key of the entry's user came after the entry's schedule event
        (the entry waits in the schedule until due, then is dropped), else None."""
        cancel_key, scheduled_at = entry.get("k"), entry.get("p")
        if not isinstance(cancel_key, str) or not isinstance(scheduled_at, str):
            return None
        p = partition_of(notification_id)
        [marker] = await self.views.snapshot(p, lambda pipe, ns: pipe.get(
            self.keys.schedule_cancelled(p, user, cancel_key, ns)))
        if marker is None or text(marker) <= positions.padded(scheduled_at):
            return None
        return iso(positions.parse(positions.unpadded(text(marker)))[0])


def _dropped(notification_id: str, raw: bytes) -> dict[str, Any] | None:
    """The document of a scheduled notification that was cancelled and dropped."""
    try:
        user, at = codec.unpack_binary(raw)
    except (CodecError, TypeError, ValueError):
        return None
    return {"id": notification_id, "user": str(user), "category": "", "title": "",
            "body": None, "data": None, "status": "cancelled", "created_at": None,
            "expires_at": None, "scheduled_for": None, "cancelled_at": iso(at), "channels": {}}


def _channel(status: dict[str, str], ch: str) -> dict[str, Any]:
    out: dict[str, Any] = {"state": status.get(f"{ch}:s", "pending")}
    for name, suffix in CHANNEL_FIELDS.items():
        value = status.get(f"{ch}:{suffix}")
        if name in TIMES:
            out[name] = iso(value)
        elif name == "attempts":
            out[name] = int(value or 0)
        else:
            out[name] = value or None
    return out


