"""Cancelling schedules by cancel key: the routing index and the atomic cancel append.

How a cancel wins (the scheduler's side is consumers/schedule/scheduler.py):

- **Routing.** ``DELETE /v1/scheduled/{cancel_key}`` names no user. Before the
  producer appends a ``notification.scheduled`` that has a cancel key, it records the
  user in ``Keys.schedule_route(cancel_key)`` (a sorted set: user → latest due time,
  ``ZADD GT``), which lives until a week after the latest due time. Written *before*
  the append, it can list a user whose append then failed (a harmless extra cancel),
  never miss one whose schedule is in the log. A schedule appended around the
  producer (a raw XADD) is not routed: cancel it with an explicit user.
- **Cancel.** :meth:`Canceller.cancel` appends ``schedule.cancelled`` for one user
  with streams/lua/producer_cancel.lua, which in the same atomic step on the
  partition's slot writes the tombstone ``Keys.cancel_tombstone(p, user, key)`` =
  the cancel's position. The fire script refuses every entry under that key whose
  schedule position is lower — even when the projector has not applied the cancel
  yet. A schedule appended after the cancel (the key reused) still fires.
- **Tombstone lifetime.** At least until every schedule it covers is due, plus
  :data:`GRACE_MS` for a lagging scheduler: ``max(latest due - now, HORIZON_MS) +
  GRACE_MS``. A scheduler that is down for longer than the grace past a cancelled
  entry's due time could fire it once the tombstone is gone (documented limit).

Failure modes: ValidationError before anything is written (bad user or key); Redis
errors propagate. A cancel that raised may or may not be in the log: calling it
again is safe (a second cancel changes nothing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from herald.streams import codec
from herald.streams.events import (
    Appended,
    Envelope,
    NotificationScheduled,
    ScheduleCancelled,
    WorkflowTriggered,
    new_envelope,
)
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.scripts import register
from herald.streams.settings import Settings
from herald.streams.validation import SCHEDULE_HORIZON_MS, Limits, validate_envelope

DAY_MS = 86_400_000
HORIZON_MS = SCHEDULE_HORIZON_MS
GRACE_MS = 7 * DAY_MS  # how long routes and tombstones outlive the latest due time
RUN_HORIZON_MS = 30 * DAY_MS  # a workflow run's cancel key is routed this long


def schedule_routes(envelopes: Sequence[Envelope]) -> dict[str, dict[str, int]]:
    """``{cancel key: {user: latest due}}`` of the scheduled events that have a key (and
    of workflow runs, which may wait up to :data:`RUN_HORIZON_MS` after their trigger)."""
    out: dict[str, dict[str, int]] = {}
    for env in envelopes:
        payload = env.payload
        cancel_key = getattr(payload, "cancel_key", None)
        if cancel_key is None:
            continue
        if type(payload) is NotificationScheduled:
            due = payload.deliver_at
        elif type(payload) is WorkflowTriggered:
            due = env.time + RUN_HORIZON_MS
        else:
            continue
        users = out.setdefault(cancel_key, {})
        users[env.user] = max(users.get(env.user, 0), due)
    return out


def _queue_routes(pipe: Any, keys: Keys, routes: dict[str, dict[str, int]]) -> None:
    for cancel_key, users in routes.items():
        key = keys.schedule_route(cancel_key)
        expire_at = max(users.values()) + GRACE_MS
        pipe.zadd(key, users, gt=True)
        pipe.pexpireat(key, expire_at, nx=True)  # a new key has no expiry: GT would skip it
        pipe.pexpireat(key, expire_at, gt=True)


async def write_routes(redis: Any, keys: Keys, envelopes: Sequence[Envelope]) -> None:
    """Record the routes of a batch (one pipeline); a no-op without keyed schedules."""
    routes = schedule_routes(envelopes)
    if routes:
        async with redis.pipeline(transaction=False) as pipe:
            _queue_routes(pipe, keys, routes)
            await pipe.execute()


def write_routes_sync(redis: Any, keys: Keys, envelopes: Sequence[Envelope]) -> None:
    """:func:`write_routes` for a synchronous client."""
    routes = schedule_routes(envelopes)
    if routes:
        with redis.pipeline(transaction=False) as pipe:
            _queue_routes(pipe, keys, routes)
            pipe.execute()


async def routed_users(redis: Any, keys: Keys, cancel_key: str, since_ms: int) -> dict[str, int]:
    """Users with a schedule under the key due at or after ``since_ms``: ``{user: due}``."""
    rows = await redis.zrangebyscore(keys.schedule_route(cancel_key), since_ms, "+inf",
                                     withscores=True)
    return {(u.decode() if isinstance(u, bytes) else str(u)): int(due) for u, due in rows}


def tombstone_ttl_ms(now: int, latest_due: int | None) -> int:
    """How long a cancel's tombstone must live (see the module docstring)."""
    ahead = 0 if latest_due is None else max(0, latest_due - now)
    return max(ahead, HORIZON_MS) + GRACE_MS


class Canceller:
    """Appends cancels with their tombstones; one per process and client."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.limits = Limits.from_settings(settings)
        self._script = register(redis, __file__, "producer_cancel")

    async def targets(self, cancel_key: str, user: str | None, since_ms: int
                      ) -> dict[str, int | None]:
        """Whom a cancel of ``cancel_key`` is for: ``{user: latest due or None}``.

        Without ``user``: every routed user with a schedule due at or after
        ``since_ms``, sorted (empty when none). With ``user``: that user alone, routed
        or not (for schedules appended around the producer).
        """
        if user is None:
            return dict(sorted((await routed_users(self.redis, self.keys, cancel_key,
                                                   since_ms)).items()))
        due = await self.redis.zscore(self.keys.schedule_route(cancel_key), user)
        return {user: None if due is None else int(due)}

    async def cancel(
        self, user: str, cancel_key: str, *, latest_due: int | None = None
    ) -> Appended:
        """Cancel what ``user`` has scheduled under ``cancel_key`` (ValidationError first)."""
        return (await self.cancel_many(cancel_key, {user: latest_due}))[0]

    async def cancel_many(
        self, cancel_key: str, users: Mapping[str, int | None]
    ) -> list[Appended]:
        """Cancel the key for each user (``{user: latest due or None}``), one pipeline.

        Every cancel is validated before any is appended; results in ``users`` order.
        """
        now = int(time.time() * 1000)
        calls: list[tuple[Envelope, int, bytes, int]] = []
        for user, latest_due in users.items():
            env = new_envelope(user, ScheduleCancelled(cancel_key=cancel_key),
                               self.settings.partitions, time_ms=now)
            raw = codec.encode(env)
            validate_envelope(env, len(raw), self.limits)
            calls.append((env, partition_for(user, self.settings.partitions), raw,
                          tombstone_ttl_ms(now, latest_due)))
        if not calls:
            return []
        replies = await self._script.many(
            [([self.keys.stream(p), self.keys.cancel_tombstone(p, env.user, cancel_key)],
              [raw, ttl]) for env, p, raw, ttl in calls])
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [Appended(env.id, p, pos.decode() if isinstance(pos, bytes) else str(pos))
                for (env, p, _, _), pos in zip(calls, replies, strict=True)]
