"""The inbox projection: pure functions ``event → writes`` for the inbox's events.

Inbox ops act on the event's user; the conditions that depend on current state
(does the item exist, is it this user's, is it unread) are decided by the applier's
Lua script (consumers/projection/lua/projector_apply.lua), the only place that can
read and write atomically. That script also keeps the unread count: it is the size
of the user's ``unread`` set, which these ops move items in and out of.

- ``("create", nid, category, title, body, data, created_ms, sealed)`` — a new unread
  item at the event's position, unless that id exists; then the oldest items beyond
  the inbox cap fall out (deleted). ``sealed`` is the event's sealed blob (title, body
  and data are then blank: streams/sealing.py), "" when the event is not sealed.
- ``("read", nid, read_ms)`` / ``("unread", nid)`` / ``("archive", nid)`` /
  ``("delete", nid)`` — no-op when the item is absent, someone else's, or already so.
- ``("read_all", up_to_padded, read_ms)`` — every unread item at or below up_to.
- The inbox model (issue 20): ``create`` carries ``expires_ms`` ("" = never; items
  whose time passed are hidden by readers and pruned when the user gets a new item,
  by log time); ``("seen", up_to, category)`` — unseen items at or below up_to leave
  the badge; ``("unarchive", nid)``; ``("snooze", nid, until)`` — hidden until a
  ``("woke", nid, until, …)`` (appended by the scheduler) brings it back unread and
  unseen; ``("bulk_read" | "bulk_archive", up_to, category, …)`` — one action on
  every matching item.
- ``("erase_inbox",)`` — every item of the user, the inbox and status sets and the
  user state (``user.erased``); ``("erase_schedules", …)`` does the same for the
  user's pending schedules and digests (consumers/schedule/projection.py).
- ``("call", COMMAND, key, *args)`` — a plain whitelisted write (HSET, DEL, ZADD, …)
  for other projections; build ``key`` with ``ctx.keys`` in ``ctx.ns``.
- ``("touch",)`` — publish the "user changed" signal for an event of plain calls.
"""

from __future__ import annotations

from herald.consumers.errors import ProjectionError
from herald.consumers.projection.base import WAKE, Context, Projection, Write, checked_id
from herald.streams import codec, positions
from herald.streams.events import (
    AllRead,
    Envelope,
    InboxBulkMarked,
    InboxSeen,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationSnoozed,
    NotificationUnarchived,
    NotificationUnread,
    NotificationWoke,
)


def project_created(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationCreated = env.payload  # type: ignore[assignment]
    if not p.in_inbox:  # channels without in_app (an SMS-only code): no inbox item
        return []
    nid = checked_id(p.notification_id) if p.notification_id else env.id
    data = codec.pack_value(p.data) if p.data else ""
    expires = "" if p.expires_at is None else str(p.expires_at)
    return [("create", nid, p.category, p.title, p.body, data, str(env.time),
             env.sealed or "", expires)]


def project_read(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationRead = env.payload  # type: ignore[assignment]
    return [("read", checked_id(p.notification_id), str(env.time))]


def project_unread(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationUnread = env.payload  # type: ignore[assignment]
    return [("unread", checked_id(p.notification_id))]


def project_archived(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationArchived = env.payload  # type: ignore[assignment]
    return [("archive", checked_id(p.notification_id))]


def project_deleted(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationDeleted = env.payload  # type: ignore[assignment]
    return [("delete", checked_id(p.notification_id))]


def project_all_read(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: AllRead = env.payload  # type: ignore[assignment]
    up_to = position if p.up_to is None else p.up_to
    if not positions.is_position(up_to):
        raise ProjectionError(f"invalid: up_to {up_to!r} is not a stream position")
    return [("read_all", positions.padded(up_to), str(env.time))]


def _up_to(up_to: str | None, position: str) -> str:
    value = position if up_to is None else up_to
    if not positions.is_position(value):
        raise ProjectionError(f"invalid: up_to {value!r} is not a stream position")
    return positions.padded(value)


def project_seen(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: InboxSeen = env.payload  # type: ignore[assignment]
    return [("seen", _up_to(p.up_to, position), "")]


def project_unarchived(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationUnarchived = env.payload  # type: ignore[assignment]
    return [("unarchive", checked_id(p.notification_id))]


def project_snoozed(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """The snooze, and its wake-up in the schedule (the scheduler appends the woke)."""
    p: NotificationSnoozed = env.payload  # type: ignore[assignment]
    nid = checked_id(p.notification_id)
    if not 0 <= p.until < 10**15:
        raise ProjectionError(f"invalid: until {p.until} is out of range")
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    wake = codec.pack_binary({"u": env.user, "w": p.until, "p": position})
    return [("snooze", nid, str(p.until)),
            ("call", "ZADD", k.schedule(part, ns), str(p.until), nid),
            ("call", "SET", k.scheduled(part, nid, ns), wake),
            ("call", "SADD", k.user_schedules(part, env.user, ns), nid),
            (WAKE, p.until)]


def project_woke(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationWoke = env.payload  # type: ignore[assignment]
    nid = checked_id(p.notification_id)
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    return [("woke", nid, str(p.until), k.schedule(part, ns), k.scheduled(part, nid, ns),
             k.user_schedules(part, env.user, ns))]


def project_bulk(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: InboxBulkMarked = env.payload  # type: ignore[assignment]
    up_to, category = _up_to(p.up_to, position), p.category or ""
    if p.action == "seen":
        return [("seen", up_to, category)]
    if p.action == "read":
        return [("bulk_read", up_to, category, str(env.time))]
    if p.action == "archived":
        return [("bulk_archive", up_to, category)]
    raise ProjectionError(f"invalid: bulk action {p.action!r}")


def project_erased(env: Envelope, position: str, ctx: Context) -> list[Write]:
    return [("erase_inbox",)]


PROJECTIONS: dict[str, Projection] = {
    NotificationCreated.TYPE: project_created,
    NotificationRead.TYPE: project_read,
    NotificationUnread.TYPE: project_unread,
    NotificationArchived.TYPE: project_archived,
    NotificationDeleted.TYPE: project_deleted,
    AllRead.TYPE: project_all_read,
    InboxSeen.TYPE: project_seen,
    NotificationUnarchived.TYPE: project_unarchived,
    NotificationSnoozed.TYPE: project_snoozed,
    NotificationWoke.TYPE: project_woke,
    InboxBulkMarked.TYPE: project_bulk,
}
