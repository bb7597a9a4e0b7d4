"""Taking a snapshot: fold the log into a scratch namespace, image it, write the file.

A snapshot of partition p at position X is built, never copied from the live
projection: the newest earlier snapshot (if any) is loaded into a fresh scratch
namespace, the log from there up to X is applied with the projector's own Lua in
build mode (consumers/replay/builder.py), and the result is dumped
(consumers/retention/image.py) and written (consumers/retention/snapshots.py). So it
is exactly the state of the log at X — the same fold live and replay do — taken
while projectors keep running (nobody waits for it), and it never carries a fault
of the live keys forward. X is the live checkpoint when it starts.

The scratch namespace's keys are listed by the registry the build fills
(``Keys.ns_registry``) and deleted at the end, also when the build fails;
:func:`drop_scratch` removes what a killed snapshotter left.

Failure modes: archive errors (a missing or corrupt segment, a snapshot that does not
read back) and Redis errors propagate; nothing live is touched either way.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from herald.consumers.errors import RetentionError
from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.views import Views
from herald.consumers.replay.builder import Builder
from herald.consumers.retention import image
from herald.consumers.retention.snapshots import Snapshot, SnapshotStore
from herald.streams.connection import text
from herald.streams.durability import fence, run_id
from herald.streams.keys import Keys
from herald.streams.positions import parse
from herald.streams.settings import Settings

UNLINK_CHUNK = 1000
SCRATCH_PREFIX = "s"
SENTINEL = "~alive"  # a registry member that names no key (see Snapshotter.snapshot)


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    """What one snapshot did."""

    snapshot: Snapshot
    previous: str | None  # the position of the snapshot it started from
    applied: int  # log entries folded on top of it
    keys: int
    seconds: float


class Snapshotter:
    """Takes snapshots of partitions of one prefix; one per process and client."""

    def __init__(self, redis: Any, settings: Settings, store: SnapshotStore,
                 builder: Builder | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.store = store
        self.views = Views(redis, settings)
        self.builder = builder or Builder(redis, settings)

    async def target(self, partition: int) -> str | None:
        """The live checkpoint of ``partition`` (what a snapshot now would image)."""
        [value] = await self.views.snapshot(
            partition, lambda pipe, ns: pipe.get(self.keys.checkpoint(partition, ns, GROUP)))
        return None if value is None else text(value)

    async def snapshot(self, partition: int, at: str | None = None) -> SnapshotReport | None:
        """Snapshot ``partition`` at ``at`` (default: its live checkpoint); None when
        there is nothing newer than its latest snapshot."""
        started = time.monotonic()
        position = at or await self.target(partition)
        if position is None:
            return None
        previous = await self.store.latest(partition, position)
        if previous is not None and previous.position == position:
            return None
        # the log up to ``position`` must be on the server's disk before a file holds
        # its fold (and the archive copies entries up to a snapshot): streams/durability.py
        server = await run_id(self.redis, self.keys.stream(partition))
        await fence(self.redis, self.keys.archive_state(partition))
        ns = f"{SCRATCH_PREFIX}{int(time.time() * 1000):x}{secrets.token_hex(3)}"
        registry = self.keys.ns_registry(partition, ns)
        # A worker that takes the partition's retention lease over drops every scratch
        # namespace it finds as a killed snapshotter's leftovers; this one may be alive
        # and slow (its lease expired under load, or while the server was down). The
        # sentinel goes with such a drop, and a scratch copy without it is not imaged.
        await self.redis.sadd(registry, SENTINEL)
        try:
            if previous is not None:
                records = await self.store.read(previous)
                await image.load(self.redis, self.keys, partition, ns, records,
                                 registry=registry)
            stats = await self.builder.build(partition, ns, until=position, track=True)
            names = [text(n) for n in await self.redis.smembers(registry)]
            records = await image.dump(self.redis, self.keys, partition, ns, names)
            if not await self.redis.sismember(registry, SENTINEL):
                raise RetentionError("another worker took over this partition's retention "
                                     "and dropped the snapshot's scratch copy: snapshot again")
            if await run_id(self.redis, self.keys.stream(partition)) != server:
                raise RetentionError("the server restarted during the snapshot (its "
                                     "scratch copy may have lost writes): snapshot again")
            if not any(r[0] == image.CHECKPOINT and text(r[2]) == position for r in records):
                raise RetentionError(f"the image of partition {partition} does not end at "
                                     f"{position}: snapshot again")
            snapshot = await self.store.write(partition, position, records)
        finally:
            await drop_scratch(self.redis, registry)
        await self.store.prune(partition, self.settings.snapshot_keep)
        return SnapshotReport(snapshot, previous.position if previous else None,
                              stats.entries, len(records), time.monotonic() - started)


async def drop_scratch(redis: Any, registry: str) -> int:
    """Delete a scratch namespace through its registry, then the registry; how many."""
    deleted = 0
    while True:
        names = await redis.spop(registry, UNLINK_CHUNK)
        if not names:
            break
        deleted += int(await redis.unlink(*names))
    await redis.unlink(registry)
    return deleted


def newer(position: str, than: str | None) -> bool:
    """Whether ``position`` is after ``than`` (None: anything is)."""
    return than is None or parse(position) > parse(than)
