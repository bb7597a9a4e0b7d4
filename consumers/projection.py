"""The inbox projection: pure functions ``event → writes``, one per event type.

No I/O here: each function takes an envelope, its stream position and a
:class:`Context` and returns a list of writes (tuples, first item the op name) that
consumers/applier.py turns into one atomic Redis step together with the checkpoint.
Because the result depends only on the log, replay gives what live gave.

Inbox ops act on the event's user; the conditions that depend on current state
(does the item exist, is it this user's, is it unread) are decided by the applier's
Lua script, which is the only place that can read and write atomically:

- ``("create", nid, category, title, body, data, created_ms)`` — a new unread item at
  the event's position, unless that id exists; then the oldest items beyond the
  inbox cap fall out (deleted).
- ``("read", nid, read_ms)`` / ``("unread", nid)`` / ``("archive", nid)`` /
  ``("delete", nid)`` — no-op when the item is absent, someone else's, or already so.
- ``("read_all", up_to_padded, read_ms)`` — every unread item at or below up_to.
- ``("call", COMMAND, key, *args)`` — a plain whitelisted write (HSET, DEL, ZADD, …)
  for other projections; build ``key`` with ``ctx.keys`` in ``ctx.ns``.
- ``("touch",)`` — publish the "user changed" signal for an event of plain calls.

To project another event type, add a function to :data:`PROJECTIONS` (and remove
the type from :data:`NOT_PROJECTED`). A function raises :class:`ProjectionError` for
an event it cannot apply; the entry is dead-lettered with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herald.consumers import positions, projection_delivery
from herald.consumers.errors import ProjectionError
from herald.consumers.schedule import projection_schedule
from herald.streams import codec
from herald.streams.events import (
    AllRead,
    Envelope,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationUnread,
)
from herald.streams.ids import is_id
from herald.streams.keys import Keys

Write = tuple[Any, ...]
DEFAULT_STATUS_TTL_MS = 7 * 86400 * 1000  # HERALD_STATUS_TTL's default (7 days)


@dataclass(frozen=True, slots=True)
class Context:
    """Where writes go: the partition, the namespace, and the key builder.

    ``status_ttl_ms`` is HERALD_STATUS_TTL: delivery statuses expire at event time + it.
    """

    partition: int
    ns: str
    keys: Keys
    status_ttl_ms: int = DEFAULT_STATUS_TTL_MS


Projector = Callable[[Envelope, str, Context], list[Write]]


def _nid(value: str) -> str:
    if not is_id(value):
        raise ProjectionError(f"invalid: notification_id {value!r} is not a Herald id")
    return value


def project_created(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationCreated = env.payload  # type: ignore[assignment]
    nid = _nid(p.notification_id) if p.notification_id else env.id
    data = codec.pack_value(p.data) if p.data else ""
    return [("create", nid, p.category, p.title, p.body, data, str(env.time))]


def project_read(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationRead = env.payload  # type: ignore[assignment]
    return [("read", _nid(p.notification_id), str(env.time))]


def project_unread(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationUnread = env.payload  # type: ignore[assignment]
    return [("unread", _nid(p.notification_id))]


def project_archived(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationArchived = env.payload  # type: ignore[assignment]
    return [("archive", _nid(p.notification_id))]


def project_deleted(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationDeleted = env.payload  # type: ignore[assignment]
    return [("delete", _nid(p.notification_id))]


def project_all_read(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: AllRead = env.payload  # type: ignore[assignment]
    up_to = position if p.up_to is None else p.up_to
    if not positions.is_position(up_to):
        raise ProjectionError(f"invalid: up_to {up_to!r} is not a stream position")
    return [("read_all", positions.padded(up_to), str(env.time))]


PROJECTIONS: dict[str, Projector] = {
    NotificationCreated.TYPE: project_created,
    NotificationRead.TYPE: project_read,
    NotificationUnread.TYPE: project_unread,
    NotificationArchived.TYPE: project_archived,
    NotificationDeleted.TYPE: project_deleted,
    AllRead.TYPE: project_all_read,
    **projection_delivery.PROJECTIONS,
    **projection_schedule.SCHEDULE_PROJECTIONS,
}
# A created notification also starts the delivery status of its push channels, and one
# fired by the scheduler leaves the schedule (or its digest items leave their bucket).
PROJECTIONS[NotificationCreated.TYPE] = projection_schedule.with_fired(
    projection_delivery.with_status(project_created)
)

# Known types that do not change the inbox: they only advance the checkpoint.
NOT_PROJECTED: frozenset[str] = frozenset()


def project(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """The writes of one event (empty: the event only advances the checkpoint)."""
    fn = PROJECTIONS.get(env.type)
    if fn is None:
        return []
    return fn(env, position, ctx)
