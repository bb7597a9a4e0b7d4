"""The schedule and digest projection: pure functions ``event → writes`` (plain calls).

State (per partition, in the projection's namespace; keys in streams/keys.py):

- ``Keys.schedule(p)`` — sorted set: scheduled notification id → due time (ms).
- ``Keys.scheduled(p, id)`` — string: a packed :func:`entry` — what the notification
  becomes (the ``notification.created`` payload), its user, cancel key, and the
  position of its schedule event (the fire script compares it with a tombstone).
- ``Keys.schedule_dropped(p, id)`` — string: packed ``[user, ms]`` of a schedule the
  scheduler dropped because it was cancelled (status ``cancelled``; expires at the
  event's time + HERALD_STATUS_TTL).
- ``Keys.schedule_cancelled(p, user, key)`` — string: padded position of the user's
  last cancel under ``key`` (expires at the event's time + :data:`CANCEL_KEEP_MS`).
- ``Keys.digest(p, user, key)`` — hash: collected digest items, field
  ``<window end, 15 digits>|<padded position>`` → packed item.
- ``Keys.digests_due(p)`` — sorted set: one member per collected item,
  ``user|digest key|field``, scored by the window end.

Transitions, all in log order, all decided by the event alone:

- ``notification.scheduled`` adds the entry.
- ``notification.created`` with a ``notification_id`` (a fired reminder or a digest
  summary, both appended by the scheduler) removes that id's entry; a digest summary
  (recognized by its idempotency key, :func:`summary_key`) removes exactly the items
  it lists, so an item that arrived late stays and goes into the next summary.
- ``schedule.cancelled`` with a ``notification_id`` (the scheduler's "dropped" event
  for a due entry it refused to fire) removes that entry; with only a ``cancel_key``
  (a user's cancel) it records the cancel marker. Entries cancelled by key stay in the
  schedule until due, marked by that marker, and are then dropped by the scheduler.

Why a cancel by key does not remove the entries at once: the projector's write ops
(consumers/projection/registry.py) are plain whitelisted calls, and finding the ids under a key
needs a read inside the apply script. The fire script's tombstone check makes the
cancel effective at once regardless (see consumers/schedule/scheduler.py); the
entries are only removed later, through the log, so replay still equals live.

Failure modes: an event a function cannot apply raises ProjectionError (dead-lettered).
"""

from __future__ import annotations

import hashlib
from typing import Any

from herald.consumers.errors import ProjectionError
from herald.consumers.projection.base import WAKE, Context, Projection, Write, checked_id
from herald.streams import codec, positions
from herald.streams.events import (
    DigestItemAdded,
    Envelope,
    NotificationContent,
    NotificationCreated,
    NotificationScheduled,
    ScheduleCancelled,
)
from herald.streams.ids import is_id
from herald.streams.schedule_cancel import GRACE_MS, HORIZON_MS
from herald.streams.validation import KEY_RE

CANCEL_KEEP_MS = HORIZON_MS + GRACE_MS  # the cancel marker outlives the tombstone's minimum
WINDOW_DIGITS = 15
IDEMPOTENCY_MAX = 200  # streams/validation.py KEY_RE length


# Numbers in writes are strings: Lua would print large ones in floating-point form.

# ------------------------------------------------------------------ layouts
def entry(env: Envelope, position: str) -> dict[str, Any]:
    """The packed value of ``Keys.scheduled``: what a schedule event will become."""
    p: NotificationScheduled = env.payload  # type: ignore[assignment]
    created = NotificationCreated(
        title=p.title, body=p.body, category=p.category, data=p.data, channels=p.channels,
        notification_id=env.id, expires_at=p.expires_at, recipients=p.recipients,
        priority=p.priority, inbox=p.inbox, template=p.template, variants=p.variants,
    )
    out: dict[str, Any] = {"u": env.user, "p": position, "d": p.deliver_at,
                           "c": codec.payload_to_dict(created)}
    if p.cancel_key is not None:
        out["k"] = p.cancel_key
    if env.correlation is not None:
        out["r"] = env.correlation
    if env.sealed is not None:
        out["s"] = env.sealed  # the fired event carries the schedule's sealed fields
    return out


def digest_field(window_end: int, position: str) -> str:
    """Hash field of one digest item: window end then position, both fixed width."""
    return f"{window_end:0{WINDOW_DIGITS}d}|{positions.padded(position)}"


def digest_member(user: str, digest_key: str, field: str) -> str:
    """Member of ``Keys.digests_due`` (digest keys and fields never contain ``|``; a user
    id may: :func:`parse_digest_member` splits from the right)."""
    return f"{user}|{digest_key}|{field}"


def parse_digest_member(member: str) -> tuple[str, str, int, str]:
    """``(user, digest key, window end, field)``; ValueError when malformed."""
    user, digest_key, window, padded = member.rsplit("|", 3)
    return user, digest_key, int(window), f"{window}|{padded}"


def field_position(field: str) -> str:
    """The plain stream position inside a digest field."""
    return positions.unpadded(field.partition("|")[2])


def summary_key(user: str, digest_key: str, window_end: int, notification_id: str) -> str:
    """Idempotency key of a digest summary.

    ``digest:{user}:{key}:{window_end}:{id}`` where ``id`` is the summary's notification
    id (its first item's id): each summary covers a distinct set of items, so late
    items get a summary of their own instead of colliding with the first one. Keys
    over the 200-character limit are hashed (deterministically).
    """
    key = f"digest:{user}:{digest_key}:{window_end}:{notification_id}"
    if len(key) <= IDEMPOTENCY_MAX and KEY_RE.match(key):
        return key
    return "digest:h:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def fire_key(notification_id: str) -> str:
    """Idempotency key of firing (or dropping) one scheduled notification."""
    return f"fire:{notification_id}"


def wake_key(notification_id: str, until: int) -> str:
    """Idempotency key of waking one snooze of an item."""
    return f"wake:{notification_id}:{until}"


# -------------------------------------------------------------- projections
def _remove_entry(ctx: Context, user: str, nid: str) -> list[Write]:
    k, p, ns = ctx.keys, ctx.partition, ctx.ns
    return [("call", "ZREM", k.schedule(p, ns), nid), ("call", "DEL", k.scheduled(p, nid, ns)),
            ("call", "SREM", k.user_schedules(p, user, ns), nid)]


def project_scheduled(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: NotificationScheduled = env.payload  # type: ignore[assignment]
    if p.deliver_at < 0:
        raise ProjectionError(f"invalid: deliver_at {p.deliver_at} is negative")
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    return [
        ("call", "ZADD", k.schedule(part, ns), str(p.deliver_at), env.id),
        ("call", "SET", k.scheduled(part, env.id, ns), codec.pack_binary(entry(env, position))),
        ("call", "SADD", k.user_schedules(part, env.user, ns), env.id),
        (WAKE, p.deliver_at),
    ]


def project_cancelled(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: ScheduleCancelled = env.payload  # type: ignore[assignment]
    if p.notification_id is not None:
        nid = checked_id(p.notification_id)
        dropped = ctx.keys.schedule_dropped(ctx.partition, nid, ctx.ns)
        return [*_remove_entry(ctx, env.user, nid),
                ("call", "SET", dropped, codec.pack_binary([env.user, env.time])),
                ("call", "PEXPIREAT", dropped, str(env.time + ctx.status_ttl_ms))]
    if p.cancel_key is None:
        raise ProjectionError("invalid: a cancel needs a cancel_key or a notification_id")
    key = ctx.keys.schedule_cancelled(ctx.partition, env.user, p.cancel_key, ctx.ns)
    return [("call", "SET", key, positions.padded(position)),
            ("call", "PEXPIREAT", key, str(env.time + CANCEL_KEEP_MS))]


def project_digest_item(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: DigestItemAdded = env.payload  # type: ignore[assignment]
    if not 0 <= p.window_end < 10**WINDOW_DIGITS:
        raise ProjectionError(f"invalid: window_end {p.window_end} is out of range")
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    field = digest_field(p.window_end, position)
    item = {"id": env.id, "t": p.title, "b": p.body, "c": p.category, "d": p.data,
            "ch": list(p.channels), "r": p.recipients, "ts": env.time}
    if env.sealed is not None:
        item["s"] = env.sealed  # title, body, data, recipients: sealed (streams/sealing.py)
    return [
        ("call", "HSET", k.digest(part, env.user, p.digest_key, ns), field,
         codec.pack_binary(item)),
        ("call", "ZADD", k.digests_due(part, ns), str(p.window_end),
         digest_member(env.user, p.digest_key, field)),
        ("call", "SADD", k.user_digests(part, env.user, ns), p.digest_key),
        (WAKE, p.window_end),
    ]


def project_erased(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """Every pending schedule and collected digest item of the user goes."""
    k, part, ns, user = ctx.keys, ctx.partition, ctx.ns, env.user
    return [("erase_schedules", k.user_schedules(part, user, ns), k.schedule(part, ns),
             k.scheduled(part, "", ns), k.user_digests(part, user, ns), k.digests_due(part, ns),
             k.digest(part, user, "", ns))]


def _covered(p: NotificationContent) -> tuple[str, int, list[Any]] | None:
    """(digest key, window end, item positions) a summary covers: its ``digest_of``, or,
    for a summary written before sealing, its ``data.digest``; None for anything else."""
    of = getattr(p, "digest_of", None)
    if isinstance(of, dict):
        dkey, window, where = of.get("key"), of.get("window_end"), of.get("positions")
    else:
        summary = p.data.get("digest") if isinstance(p.data, dict) else None
        if not isinstance(summary, dict) or not isinstance(summary.get("items"), list):
            return None
        dkey, window = summary.get("key"), summary.get("window_end")
        where = [i.get("position") if isinstance(i, dict) else None for i in summary["items"]]
    if isinstance(dkey, str) and isinstance(window, int) and isinstance(where, list):
        return dkey, window, where
    return None


def project_fired(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """Extra writes of a ``notification.created`` that names its ``notification_id``."""
    p: NotificationContent = env.payload  # type: ignore[assignment]
    nid = p.notification_id
    if not nid or not is_id(nid):
        return []
    writes = _remove_entry(ctx, env.user, nid)
    covered = _covered(p)
    if covered is None:
        return writes
    dkey, window, where_all = covered
    if env.idempotency_key != summary_key(env.user, dkey, window, nid):
        return writes  # user data that merely looks like a summary
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    bucket, due = k.digest(part, env.user, dkey, ns), k.digests_due(part, ns)
    for where in where_all:
        if not positions.is_position(where) or not 0 <= window < 10**WINDOW_DIGITS:
            continue
        field = digest_field(window, str(where))
        writes.append(("call", "HDEL", bucket, field))
        writes.append(("call", "ZREM", due, digest_member(env.user, dkey, field)))
    return writes


PROJECTIONS: dict[str, Projection] = {
    NotificationScheduled.TYPE: project_scheduled,
    ScheduleCancelled.TYPE: project_cancelled,
    DigestItemAdded.TYPE: project_digest_item,
}
