"""What a delivery worker reads before deciding: projected profiles and preferences.

Workers never race the projector: :meth:`ProjectedState.load` first waits until
the projector's checkpoint of the partition has reached the position of the
entries being decided (so a ProfileChanged or PreferencesChanged appended before
a notification is always seen by its delivery), then reads every user's profile
and preferences in the same MULTI as the partition's view pointer (a ``herald
replay`` switching namespaces in between is noticed and the read is repeated).

Failure modes: :class:`ProjectorBehindError` when the checkpoint does not reach
the position within ``wait_s`` (the batch is redelivered later); Redis errors
propagate.

:meth:`ProjectedState.applied_at` answers, from the projector's record of event ids
(``Keys.seen``), whether an entry is the one the projector applied or a duplicate of
it, so a delivery group sends exactly what the projector applied.

:meth:`ProjectedState.recorded` answers which steps already have an outcome
event, from the producer's idempotency records (streams/idempotency.py), which
exist from the moment the event is appended — no projector involved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consumers.channels.base import Device
from herald.consumers.delivery.jobs import Job
from herald.consumers.delivery.projection import CONTACT_PREFIX, SEALED_CONTACT_PREFIX
from herald.consumers.errors import ConsumerError
from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.views import Views, ns_of
from herald.streams import codec, positions
from herald.streams.connection import text
from herald.streams.errors import CodecError
from herald.streams.idempotency import IdempotencyRecords
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.sealing import open_blob
from herald.streams.settings import Settings

PROJECTOR_WAIT_S = 10.0
POLL_FIRST_S = 0.005
POLL_MAX_S = 0.1
NS_RETRIES = 5


class ProjectorBehindError(ConsumerError):
    """Raised when the projector has not applied a delivery's entry in time.

    The delivery batch is left pending and redelivered; start (or fix) the
    projector role if this persists. Excused: waiting for the projector never counts
    toward the delivery limit.
    """

    excused = True


@dataclass(frozen=True, slots=True)
class UserState:
    """A user's projected profile (text fields), preferences, quiet hours and devices
    (devices are read only for the push channel)."""

    profile: dict[str, str] = field(default_factory=dict)
    preferences: dict[str, Any] = field(default_factory=dict)
    quiet_hours: dict[str, str] | None = None
    devices: tuple[Device, ...] = ()


class ProjectedState:
    """Reads of the live projection for delivery decisions; one per process."""

    def __init__(self, redis: Any, settings: Settings, wait_s: float = PROJECTOR_WAIT_S, *,
                 devices: bool = False) -> None:
        self.redis = redis
        self.devices = devices  # also read each user's devices (the push channel)
        self.max_devices = settings.max_devices
        self.keys = Keys(settings.prefix)
        self.records = IdempotencyRecords.from_settings(settings)
        self.span_ms = self.records.span_ms
        self.views = Views(redis, settings)
        self.data_keys = KeyStore(redis, settings)
        self.wait_s = wait_s

    async def load(
        self, partition: int, position: str, users: Iterable[str]
    ) -> dict[str, UserState]:
        """Every user's state once ``position`` is projected (see the module doc)."""
        names = sorted(set(users))
        k, p = self.keys, partition

        def reads(pipe: Any, ns: str) -> None:
            for user in names:
                pipe.hgetall(k.profile(p, user, ns))
                pipe.hmget(k.preferences(p, user, ns), "prefs", "quiet")
                if self.devices:
                    pipe.hgetall(k.devices(p, user, ns))

        replies = await self._projected(partition, position, reads)
        step = 3 if self.devices else 2
        return {user: await self._user_state(
                    user, replies[step * i], replies[step * i + 1],
                    replies[step * i + 2] if self.devices else None)
                for i, user in enumerate(names)}

    async def applied_at(self, partition: int, events: Sequence[tuple[str, str]]
                         ) -> list[str | None]:
        """For each ``(event id, position)`` of a log entry, once the projector has
        passed the highest: the position at which the projector applied that event id
        (PROTOCOL.md, "Duplicates") — the entry's own for the entry it applied, an
        earlier one for a duplicate, None when its record does not say (the projector
        dead-lettered the entry, or is more than a dedupe window ahead and dropped
        that bucket)."""
        if not events:
            return []
        span, k, p = self.span_ms, self.keys, partition
        buckets = [int(positions.parse(position)[0]) // span for _, position in events]

        def reads(pipe: Any, ns: str) -> None:
            for (event_id, _), b in zip(events, buckets, strict=True):
                pipe.hget(k.seen(p, span, b - 1, ns), event_id)
                pipe.hget(k.seen(p, span, b, ns), event_id)

        highest = max((position for _, position in events), key=positions.parse)
        replies = await self._projected(partition, highest, reads)
        found = [replies[2 * i] or replies[2 * i + 1] for i in range(len(events))]
        return [None if value is None else text(value) for value in found]

    async def _projected(self, partition: int, position: str,
                         reads: Callable[[Any, str], None]) -> list[Any]:
        """The replies of ``reads`` (queued on a MULTI with the view pointer, in the
        namespace it names) once the projector's checkpoint reaches ``position``."""
        target = positions.parse(position)
        k, p = self.keys, partition
        deadline = time.monotonic() + self.wait_s
        delay = POLL_FIRST_S
        switches = 0
        while True:
            ns = self.views.cached(p)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(k.partition_view(p))
                pipe.get(k.checkpoint(p, ns, GROUP))
                reads(pipe, ns)
                replies = await pipe.execute()
            actual = ns_of(replies[0])
            if actual != ns:
                self.views.remember(p, actual)
                switches += 1
                if switches > NS_RETRIES:
                    raise RuntimeError(f"view of partition {p} keeps switching")
                continue
            checkpoint = replies[1]
            if checkpoint is not None and positions.parse(text(checkpoint)) >= target:
                return list(replies[2:])
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProjectorBehindError(
                    f"the projector has not applied partition {p} up to {position} within "
                    f"{self.wait_s:g}s (checkpoint {text(checkpoint) if checkpoint else None})")
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, POLL_MAX_S)

    async def recorded(self, partition: int, jobs: Sequence[Job]) -> set[str]:
        """Notification ids of the jobs whose current step already has an outcome event."""
        if not jobs:
            return set()
        found = await self.records.found(self.redis, partition, [job.key("o") for job in jobs])
        return {job.notification_id for job, hit in zip(jobs, found, strict=True) if hit}


    async def _user_state(self, user: str, profile: dict[Any, Any], prefs: Any,
                          devices: dict[Any, Any] | None) -> UserState:
        """The state of one user, the profile's sealed addresses opened."""
        opened = await open_devices(self.data_keys, user, devices or {})
        return _user_state(await open_profile(self.data_keys, user, profile), prefs,
                           tuple(opened[-self.max_devices:]))


async def open_profile(data_keys: KeyStore, user: str, raw: dict[Any, Any]) -> dict[str, str]:
    """A projected profile hash as text fields, its sealed addresses (``s``) opened
    (gone when the user's key was erased), and the contacts set since (``c:``/``cs:``,
    consumers/delivery/projection.py) laid over them."""
    fields = {text(k): v for k, v in raw.items()}
    blob = fields.pop("s", None)
    contacts = {name: fields.pop(name) for name in [
        n for n in fields if n.startswith((CONTACT_PREFIX, SEALED_CONTACT_PREFIX))]}
    out = {name: text(value) for name, value in fields.items()}
    if blob is not None:
        opened = await open_blob(data_keys, user, blob)
        out.update({name: str(value) for name, value in (opened or {}).items()})
    for name, value in sorted(contacts.items()):
        kind = name.partition(":")[2]
        if name.startswith(CONTACT_PREFIX):
            if text(value):
                out[kind] = text(value)
            else:
                out.pop(kind, None)
        else:
            found = await open_blob(data_keys, user, value)
            if found and found.get("value"):
                out[kind] = str(found["value"])
            else:
                out.pop(kind, None)
    return out


async def open_devices(data_keys: KeyStore, user: str, raw: dict[Any, Any]) -> list[Device]:
    """A projected devices hash as devices, oldest registration first, tokens opened
    (none when the user's key was erased)."""
    by_id: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        device, _, part = text(name).rpartition(":")
        by_id.setdefault(device, {})[part] = value
    out: list[Device] = []
    for device, parts in by_id.items():
        token = text(parts["t"]) if "t" in parts else None
        if token is None and "s" in parts:
            found = await open_blob(data_keys, user, parts["s"])
            token = str(found["token"]) if found and found.get("token") else None
        if token is None or "p" not in parts:
            continue
        out.append(Device(id=device, platform=text(parts["p"]), token=token,
                          app=text(parts["a"]) if "a" in parts else None,
                          registered_at=int(text(parts.get("ts") or b"0"))))
    out.sort(key=lambda d: (d.registered_at, d.id))
    return out


def _user_state(fields: dict[str, str], prefs: Any, devices: tuple[Device, ...] = ()
                ) -> UserState:
    preferences: dict[str, Any] = {}
    quiet: dict[str, str] | None = None
    raw_prefs, raw_quiet = prefs if isinstance(prefs, list | tuple) else (prefs, None)
    if raw_prefs:
        try:
            unpacked = codec.unpack_value(raw_prefs)
        except CodecError:
            unpacked = None
        if isinstance(unpacked, dict):
            preferences = unpacked
    if raw_quiet:
        try:
            found = codec.unpack_value(raw_quiet)
        except CodecError:
            found = None
        quiet = found if isinstance(found, dict) else None
    return UserState(profile=fields, preferences=preferences, quiet_hours=quiet,
                     devices=devices)
