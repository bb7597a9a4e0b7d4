"""Due entries → calls of the fire script (consumers/schedule/lua/scheduler_fire.lua).

A :class:`Fire` is one entry of one script call: its KEYS (the cancel tombstone, for
a reminder that has a cancel key) and its six ARGV values (with its idempotency key,
looked up in the producer's records, streams/idempotency.py). The
events are encoded here, in Python, with streams.codec; the script only chooses
which of them to append. Every event carries the fire idempotency key
(``fire:{id}`` for reminders, :func:`summary_key` for digests), so whichever of
"created" or "dropped" was appended first is the only one ever appended.

:class:`FireScript` runs one partition's batch and parses the answer; ``None`` means
the lease is no longer ours (fenced): nothing was appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from herald.consumers.schedule.digest import Summary
from herald.consumers.schedule.projection import fire_key, wake_key
from herald.streams import codec
from herald.streams.connection import text
from herald.streams.crypto import DataKey
from herald.streams.events import (
    Envelope,
    NotificationCreated,
    NotificationWoke,
    ScheduleCancelled,
    WorkflowTimerFired,
)
from herald.streams.idempotency import IdempotencyRecords, server_bucket
from herald.streams.ids import new_id
from herald.streams.keys import Keys
from herald.streams.scripts import register
from herald.streams.sealing import seal
from herald.streams.validation import Limits, validate_envelope

GROUP = "scheduler"  # the lease group (no stream group: the scheduler reads projections)
FIRED, DROPPED, DUPLICATE = "fired", "dropped", "duplicate"


@dataclass(frozen=True, slots=True)
class Fire:
    """One entry of a fire call; ``token`` names it for the scheduler's bookkeeping."""

    token: str
    due: int
    keys: list[str]  # the cancel tombstone, if any
    args: list[Any]
    members: tuple[str, ...] = field(default_factory=tuple)  # digest members covered


@dataclass(frozen=True, slots=True)
class Outcome:
    fire: Fire
    outcome: str  # FIRED | DROPPED | DUPLICATE
    position: str


def _encode(env: Envelope, limits: Limits) -> bytes:
    raw = codec.encode(env)
    validate_envelope(env, len(raw), limits)
    return raw


def reminder_fire(
    keys: Keys, partition: int, nid: str, packed: bytes, due: int, now: int, limits: Limits
) -> Fire:
    """The fire of one scheduled notification from its ``Keys.scheduled`` value.

    Raises CodecError/ValidationError for an entry that cannot become an event.
    """
    entry = codec.unpack_binary(packed)
    if "w" in entry:  # a snoozed item's wake-up (consumers/projection/inbox.py)
        return wake_fire(partition, nid, entry, due, now, limits)
    if "wf" in entry:  # a workflow run's timer (consumers/workflows/projection.py)
        return timer_fire(partition, nid, entry, due, now, limits)
    user, cancel_key = entry["u"], entry.get("k")
    created = codec.payload_from_dict(NotificationCreated.TYPE, NotificationCreated.VERSION,
                                      entry["c"])
    idem = fire_key(nid)
    fired = Envelope(id=new_id(partition, now), user=user, time=now, payload=created,
                     idempotency_key=idem, correlation=entry.get("r"), sealed=entry.get("s"))
    if cancel_key is None:
        return Fire(nid, due, [], ["", idem, fired.id, _encode(fired, limits), "", ""])
    dropped = Envelope(id=new_id(partition, now), user=user, time=now,
                       payload=ScheduleCancelled(cancel_key=cancel_key, notification_id=nid),
                       idempotency_key=idem, correlation=entry.get("r"))
    return Fire(
        nid, due, [keys.cancel_tombstone(partition, user, cancel_key)],
        [entry["p"], idem, fired.id, _encode(fired, limits), dropped.id, _encode(dropped, limits)],
    )


def wake_fire(partition: int, nid: str, entry: dict[str, Any], due: int, now: int,
              limits: Limits) -> Fire:
    """The fire of a snooze's wake-up: one ``notification.woke`` under the idempotency
    key ``wake:{id}:{until}`` (a snooze moved to another time wakes on its own)."""
    until = int(entry["w"])
    idem = wake_key(nid, until)
    woke = Envelope(id=new_id(partition, now), user=str(entry["u"]), time=now,
                    payload=NotificationWoke(notification_id=nid, until=until),
                    idempotency_key=idem)
    return Fire(nid, due, [], ["", idem, woke.id, _encode(woke, limits), "", ""])


def timer_fire(partition: int, token: str, entry: dict[str, Any], due: int, now: int,
               limits: Limits) -> Fire:
    """The fire of a workflow run's timer: one ``workflow.timer_fired`` under the
    idempotency key ``wft:{run}:{index}`` (a step parks at most once)."""
    run, index = str(entry["wf"]), int(entry["i"])
    idem = f"wft:{run}:{index}"
    fired = Envelope(id=new_id(partition, now), user=str(entry["u"]), time=now,
                     payload=WorkflowTimerFired(run_id=run, index=index, until=due),
                     idempotency_key=idem)
    return Fire(token, due, [], ["", idem, fired.id, _encode(fired, limits), "", ""])


def digest_fire(summary: Summary, members: Sequence[str], due: int, limits: Limits,
                key: DataKey | None = None) -> Fire:
    """The fire of one digest summary, sealed under ``key`` when given."""
    env = summary.envelope if key is None else seal(summary.envelope, key)
    idem = env.idempotency_key or ""
    return Fire(str(env.payload.notification_id), due,  # type: ignore[attr-defined]
                [], ["", idem, env.id, _encode(env, limits), "", ""], tuple(members))


class FireScript:
    """The fire script on one client."""

    def __init__(self, redis: Any, records: IdempotencyRecords, consumer: str) -> None:
        self.keys = records.keys
        self.consumer = consumer
        self.records = records
        self._script = register(redis, __file__, "scheduler_fire")

    async def _call(self, partition: int, fires: Sequence[Fire], bucket: int | None) -> Any:
        buckets, b = self.records.script_keys(partition, bucket=bucket)
        keys = [self.keys.stream(partition), self.keys.lease(GROUP, partition), *buckets]
        args: list[Any] = [self.consumer, self.records.span_ms, b, len(fires)]
        for f in fires:
            keys.extend(f.keys)
            args.extend(f.args)
        return await self._script(keys=keys, args=args)

    async def fire(self, partition: int, fires: Sequence[Fire]) -> list[Outcome] | None:
        """Fire a batch of one partition; None when fenced (the lease is not ours)."""
        if not fires:
            return []
        try:
            reply = await self._call(partition, fires, None)
        except ResponseError as exc:  # the server named its bucket: nothing was written
            bucket = server_bucket(exc)
            if bucket is None:
                raise
            reply = await self._call(partition, fires, bucket)
        if text(reply[0]) != "ok":
            return None
        return [Outcome(f, text(reply[1 + 2 * i]), text(reply[2 + 2 * i]))
                for i, f in enumerate(fires)]
