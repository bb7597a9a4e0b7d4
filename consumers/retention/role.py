"""The ``retention`` role: snapshot each partition when due, then archive and trim below.

One active retention worker per partition (leases of the ``retention`` group, as the
scheduler's: consumers/group/lease.py). Every :data:`CHECK_S`, for each owned
partition (:meth:`Retention.step`):

1. **Snapshot when due** (``HERALD_SNAPSHOT_EVERY``: entries added since the last
   snapshot, or time since it when anything was added; consumers/retention/snapshotter.py).
2. **Archive and trim** (streams/archive/archiver.py) the entries up to
   ``min(latest snapshot, safe trim point)``: never past the newest snapshot (replay
   starts there), never past an entry some consumer group has not read or acked
   (``safe_trim_point``), and not at all while a ``herald replay`` or verify holds the
   replay lock (it reads the log as it was when it started).

What it did is recorded per partition in ``Keys.archive_state`` (``snapshot``,
``snapshot_at``, ``snapshot_added``, ``blocked_by``, ``blocked_at``; ``trimmed_to``
is the archiver's), which ``herald status``, ``/metrics`` and the operator page
read: a group that lags is named there, and only that partition stops trimming — it
never loses entries.

Every step is crash-safe (the snapshot is written whole and verified before it
counts; the archiver's steps are idempotent and ordered), so a killed worker's
successor simply does the step again. Errors of one partition are logged
(``retention_failed``) and retried on the next check; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from herald.consumers.aio import consumer_name, sleep_unless
from herald.consumers.group.lease import LeaseChanges, Leases
from herald.consumers.metrics import consumer_metrics
from herald.consumers.retention.snapshots import SnapshotStore
from herald.consumers.retention.snapshotter import SCRATCH_PREFIX, Snapshotter, drop_scratch
from herald.streams.archive import Archiver, ArchiveReport, SegmentStore, open_storage
from herald.streams.archive import safe_trim_point as group_bound
from herald.streams.archive.archiver import TRIMMED_TO
from herald.streams.archive.segments import successor
from herald.streams.connection import REDIS_ERRORS, scan_keys, text
from herald.streams.errors import HeraldError
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.positions import parse
from herald.streams.settings import Settings

GROUP = "retention"  # the lease group
CHECK_S = 5.0  # a check reads two keys per owned partition; snapshots are minutes apart

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step did for one partition."""

    partition: int
    snapshot: str | None = None  # the position of a snapshot taken now
    archived: ArchiveReport | None = None
    blocked_by: str | None = None  # the group that keeps the stream from being trimmed
    keys: int = 0  # keys in the snapshot taken now


class Retention:
    """Snapshots, archives and trims the partitions it holds the leases of."""

    def __init__(self, settings: Settings, redis: Any, *, consumer: str | None = None,
                 partitions: Sequence[int] | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.prefix)
        storage = open_storage(settings.archive_location)
        self.snapshots = SnapshotStore(storage, settings.partitions)
        self.snapshotter = Snapshotter(redis, settings, self.snapshots)
        self.archiver = Archiver(redis, self.keys, SegmentStore(storage))
        self.consumer = consumer or consumer_name()
        parts = list(range(settings.partitions) if partitions is None else partitions)
        self.leases = Leases(redis, settings, GROUP, self.consumer, parts)
        self._log = log.bind(group=GROUP, consumer=self.consumer)
        self.metrics = consumer_metrics()  # consumers/metrics.py

    # ------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event) -> None:
        """Check the owned partitions every :data:`CHECK_S` until ``stop``."""
        leases = asyncio.create_task(self.leases.maintain(stop, self._on_leases, self._log))
        try:
            while not stop.is_set():
                try:
                    todo = await self.survey(sorted(self.leases.owned))
                except REDIS_ERRORS as exc:
                    self._log.warning("retention_failed", error=str(exc))
                    todo = {}
                for p, (added, state) in todo.items():
                    if stop.is_set():
                        break
                    try:
                        await self.step(p, known=(added, state))
                    except Exception as exc:  # one partition's failure stops no other
                        expected = isinstance(exc, HeraldError | redis.exceptions.RedisError |
                                              OSError)
                        self._log.warning("retention_failed", partition=p, error=str(exc),
                                          exc_info=None if expected else exc)
                await sleep_unless(stop, CHECK_S)
        finally:
            leases.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                await leases
        with contextlib.suppress(*REDIS_ERRORS):
            await self.leases.release(sorted(self.leases.owned))
            await self.leases.leave()

    async def _on_leases(self, changes: LeaseChanges) -> None:
        if changes.surplus:
            await self.leases.release(changes.surplus)
        if changes.acquired:  # what a killed snapshotter of them left behind
            await self.drop_scratch(changes.acquired)

    async def drop_scratch(self, partitions: Sequence[int]) -> None:
        """Drop the scratch namespaces of these partitions (one SCAN for all)."""
        wanted = {self.keys.tag(p) for p in partitions}
        pattern = self.keys.ns_registry(partitions[0], SCRATCH_PREFIX + "*") \
            if len(wanted) == 1 else self.keys.ns_registry_pattern(SCRATCH_PREFIX + "*")
        async for registry in scan_keys(self.redis, pattern, near=sorted(wanted)):
            if registry.partition(":registry:")[0] in wanted:
                await drop_scratch(self.redis, registry)

    # --------------------------------------------------------------------- step
    async def survey(self, partitions: Sequence[int]
                     ) -> dict[int, tuple[int, dict[str, str]]]:
        """The partitions with something to do (a snapshot due, or entries below the
        newest snapshot not yet archived), each with its entries ever added and its
        archive state: one round trip for all."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xinfo_stream(self.keys.stream(p))
                pipe.hgetall(self.keys.archive_state(p))
            replies = await pipe.execute(raise_on_error=False)
        out = {}
        for i, p in enumerate(partitions):
            info, raw = replies[2 * i], replies[2 * i + 1]
            if isinstance(raw, Exception):
                raise raw
            added = _entries_added(info)
            state = {text(k): text(v) for k, v in raw.items()}
            if self.due(added, state) or self._unarchived(state):
                out[p] = (added, state)
        return out

    def due(self, added: int, state: dict[str, str]) -> bool:
        """Whether ``HERALD_SNAPSHOT_EVERY`` says the partition needs a snapshot."""
        every = self.settings.snapshot_every
        since = added - int(state.get("snapshot_added", 0))
        if since <= 0:
            return False
        if every.events is not None and since >= every.events:
            return True
        taken = int(state.get("snapshot_at", 0))
        return every.seconds is not None and time.time() * 1000 - taken >= every.seconds * 1000

    @staticmethod
    def _unarchived(state: dict[str, str], taken: str | None = None) -> bool:
        """Whether entries up to the newest snapshot may still wait to be archived."""
        newest = taken or state.get("snapshot")
        if not newest:
            return False  # nothing is archived before a first snapshot
        trimmed = state.get(TRIMMED_TO)
        return not trimmed or parse(trimmed) < parse(successor(newest))

    async def step(self, partition: int, *, force: bool = False, trim: bool = True,
                   known: tuple[int, dict[str, str]] | None = None) -> StepReport:
        """Snapshot when due (or ``force``), then archive and trim (unless ``trim``
        is False); see the module docstring. ``known``: entries added and archive
        state, as :meth:`survey` just read them."""
        taken, keys = None, 0
        added, state = known or (await self._added(partition), await self._state(partition))
        if force or self.due(added, state):
            report = await self.snapshotter.snapshot(partition)
            if report is not None:
                taken, keys = report.snapshot.position, report.keys
                self.metrics.snapshots.inc()
                await self.redis.hset(self.keys.archive_state(partition), mapping={
                    "snapshot": taken, "snapshot_at": int(time.time() * 1000),
                    "snapshot_added": added})
                self._log.info("snapshot_written", partition=partition, position=taken,
                               applied=report.applied, keys=report.keys,
                               duration_ms=round(report.seconds * 1000, 1))
        if not trim or not self._unarchived(state, taken):
            return StepReport(partition, taken, keys=keys)
        return dataclasses.replace(await self._archive(partition, taken), keys=keys)

    async def _archive(self, partition: int, taken: str | None) -> StepReport:
        latest = await self.snapshots.latest(partition)
        if latest is None or await self.redis.exists(self.keys.replay_lock()):
            return StepReport(partition, taken)
        bound = await group_bound(self.redis, self.keys, partition)
        state = self.keys.archive_state(partition)
        if bound is None:  # no consumer group yet: nothing says any entry is done with
            return StepReport(partition, taken)
        if parse(bound.position) < parse(latest.position):
            blocked, upto = bound.group, bound.position
            await self.redis.hset(state, mapping={"blocked_by": blocked, "blocked_at": upto})
            if parse(upto) == (0, 0):
                return StepReport(partition, taken, blocked_by=blocked)
        else:
            await self.redis.hdel(state, "blocked_by", "blocked_at")
            blocked, upto = None, latest.position
        archived = await self.archiver.archive(partition, upto)
        if archived.entries:
            self.metrics.archived.inc(archived.entries)
            self._log.info("log_archived", partition=partition, entries=archived.entries,
                           segments=archived.segments, trimmed_to=archived.trimmed_to,
                           duration_ms=round(archived.seconds * 1000, 1))
        return StepReport(partition, taken, archived, blocked)

    async def _added(self, partition: int) -> int:
        """Entries ever added to the partition's stream (XINFO ``entries-added``)."""
        try:
            info = await self.redis.xinfo_stream(self.keys.stream(partition))
        except redis.exceptions.ResponseError as exc:
            info = exc
        return _entries_added(info)

    async def _state(self, partition: int) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.archive_state(partition))
        return {text(k): text(v) for k, v in raw.items()}


def _entries_added(info: Any) -> int:
    """XINFO STREAM's ``entries-added`` (0 for a stream that does not exist yet)."""
    if isinstance(info, redis.exceptions.ResponseError) and "no such key" in str(info).lower():
        return 0
    if isinstance(info, Exception):
        raise info
    return int(info.get("entries-added", info.get(b"entries-added", 0)))


async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
    """The ``retention`` role (consumers/roles.py); idle when ``HERALD_RETENTION=false``."""
    if not settings.retention:
        await stop.wait()
        return
    await Retention(settings, redis).run(stop)
