"""``herald replay``: rebuild the projection from the log, then switch atomically.

Procedure (projectors keep running throughout; nobody is paused):
1. Take the replay lock (one replay or verify at a time per prefix).
2. Pick a fresh namespace ``r<ms hex>`` — or, when ``Keys.replay_state()`` says an
   earlier replay was interrupted, resume it: its namespace keeps its own
   per-partition checkpoints, so the build continues where it stopped.
3. Build every partition into it: from its newest snapshot (consumers/retention/) and
   the log after it, or, with ``from_start``, from the first entry of the archive
   segments and the stream (consumers/replay/builder.py).
4. Switch each partition (consumers/replay/lua/replay_switch.lua): in one script, if the
   rebuilt namespace's checkpoint is not behind the live one, the partition's view
   pointer names the new namespace; otherwise catch up to the live checkpoint and try
   again. A projector whose next batch was built for the old namespace is told by its
   script and rebuilds it for the new one; entries the rebuild already covered are
   no-ops there. Readers are told the same way (consumers/projection/views.py).
5. Delete the old namespaces' keys, record the new one in ``Keys.view_pointer()``,
   drop the replay state.

Interrupting at any step is safe: before a partition's switch the live view is
untouched; after it the new namespace is live. Running ``herald replay`` again
finishes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consumers.errors import ReplayError
from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.views import Views
from herald.consumers.replay.builder import Builder, BuildStats, Progress
from herald.consumers.retention import image
from herald.consumers.retention.snapshots import SnapshotStore
from herald.streams.archive import open_storage
from herald.streams.connection import scan_keys, text
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.log import get_logger
from herald.streams.scripts import register
from herald.streams.settings import Settings

LOCK_TTL_MS = 30_000
LOCK_RENEW_S = 10.0
SWITCH_ATTEMPTS = 100  # catch-up rounds per partition before giving up (busy partition)
SCAN_COUNT = 5000  # keys looked at per SCAN page when deleting an old namespace
UNLINK_BATCH = 1000  # keys per UNLINK

log = get_logger(__name__)


@dataclass(slots=True)
class ReplayReport:
    """What a replay did."""

    ns: str
    resumed: bool
    partitions: list[int]
    stats: BuildStats = field(default_factory=BuildStats)
    snapshots: int = 0  # partitions that started from a snapshot
    deleted_keys: int = 0
    rebuild_seconds: float = 0.0  # building the namespace and switching to it
    seconds: float = 0.0  # everything, deleting the old namespace included

    @property
    def events_per_s(self) -> float:
        """The rebuild rate: events applied per second of building and switching."""
        return self.stats.entries / self.rebuild_seconds if self.rebuild_seconds > 0 else 0.0


@contextlib.asynccontextmanager
async def replay_lock(redis: Any, keys: Keys) -> AsyncIterator[None]:
    """Hold ``Keys.replay_lock()`` (renewed) for the block; ReplayError when taken."""
    token = secrets.token_hex(8)
    key = keys.replay_lock()
    if not await redis.set(key, token, nx=True, px=LOCK_TTL_MS):
        raise ReplayError("another `herald replay` is running on this prefix (or died less "
                          f"than {LOCK_TTL_MS // 1000}s ago); try again later")

    async def renew() -> None:
        while True:
            await asyncio.sleep(LOCK_RENEW_S)
            await redis.pexpire(key, LOCK_TTL_MS)

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if text(await redis.get(key) or b"") == token:
            await redis.delete(key)


async def delete_namespace(redis: Any, keys: Keys, ns: str, partitions: Sequence[int]) -> int:
    """UNLINK every key of ``ns`` in the given partitions, a page at a time; how many.

    One SCAN over the keyspace (on a Cluster: over the primaries serving them)."""
    wanted = set(partitions)
    pattern = keys.ns_pattern(ns, partitions[0] if len(wanted) == 1 else None)
    deleted, batch = 0, []
    async for key in scan_keys(redis, pattern, near=[keys.tag(p) for p in wanted],
                               count=SCAN_COUNT):
        split = keys.split_ns_key(key)
        if split is not None and split[1] == ns and split[0] in wanted:
            batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            deleted += int(await redis.unlink(*batch))
            batch = []
    if batch:
        deleted += int(await redis.unlink(*batch))
    return deleted


class Replay:
    """One replay run; see the module docstring."""

    def __init__(self, redis: Any, settings: Settings, progress: Progress | None = None, *,
                 from_start: bool = False) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.builder = Builder(redis, settings, progress)
        self.views = Views(redis, settings)
        self.from_start = from_start
        self.snapshots = SnapshotStore(open_storage(settings.archive_location),
                                       settings.partitions)
        self._switch = register(redis, __file__, "replay_switch")

    async def _state(self) -> tuple[str, bool]:
        state = {text(k): text(v) for k, v in
                 (await self.redis.hgetall(self.keys.replay_state())).items()}
        if "ns" in state:
            return state["ns"], True
        ns = f"r{int(time.time() * 1000):x}"
        await self.redis.hset(self.keys.replay_state(),
                              mapping={"ns": ns, "started": int(time.time() * 1000)})
        return ns, False

    async def run(self, partitions: Sequence[int] | None = None) -> ReplayReport:
        parts = list(range(self.settings.partitions) if partitions is None else partitions)
        started = time.monotonic()
        async with replay_lock(self.redis, self.keys):
            ns, resumed = await self._state()
            report = ReplayReport(ns=ns, resumed=resumed, partitions=parts)
            log.info("replay_started", ns=ns, resumed=resumed, partitions=len(parts))
            views = await self.views.read(parts)
            todo = [p for p in parts if views[p] != ns]
            if not self.from_start:
                report.snapshots = await self._load_snapshots(todo, ns)
            report.stats = await self.builder.build_many(todo, ns)
            for p in todo:
                await self._switch_partition(p, views[p], ns, report.stats)
            if todo:  # one line for the switch, not one per partition
                log.info("views_switched", ns=ns, partitions=len(todo),
                         old=sorted({views[p] for p in todo}))
            report.rebuild_seconds = time.monotonic() - started
            report.deleted_keys = await self._cleanup(parts, ns)
            if partitions is None:
                await self.redis.set(self.keys.view_pointer(), ns)
            await self.redis.delete(self.keys.replay_state())
        report.seconds = time.monotonic() - started
        log.info("replay_finished", ns=ns, entries=report.stats.entries,
                 skipped=report.stats.skipped, seconds=round(report.seconds, 3),
                 rebuild_seconds=round(report.rebuild_seconds, 3))
        return report

    async def _load_snapshots(self, parts: Sequence[int], ns: str) -> int:
        """Start each partition not yet begun in ``ns`` from its newest snapshot; how many."""
        loaded = 0
        for p in parts:
            if await self.builder.checkpoint(p, ns) is not None:
                continue  # resumed: the namespace is on its way already
            found = await self.snapshots.latest(p)
            if found is not None:
                records = await self.snapshots.read(found)
                await image.load(self.redis, self.keys, p, ns, records)
                loaded += 1
        return loaded

    async def _switch_partition(self, p: int, old: str, ns: str, stats: BuildStats) -> None:
        k = self.keys
        await self.redis.hsetnx(k.replay_state(), f"old:{p}", old)
        for _ in range(SWITCH_ATTEMPTS):
            reply = await self._switch(
                keys=[k.partition_view(p), k.checkpoint(p, old, GROUP), k.checkpoint(p, ns, GROUP)],
                args=[old, ns, LIVE_NS],
            )
            status = text(reply[0])
            if status == "ok":
                log.debug("view_switched", partition=p, old=old, ns=ns)
                return
            if status == "moved":
                raise ReplayError(f"partition {p}'s view moved to {text(reply[1])!r} during "
                                  "the replay (another replay?)")
            await self.builder.build(p, ns, until=text(reply[1]), stats=stats)
        raise ReplayError(f"partition {p} kept moving ahead of the rebuild; run again")

    async def _cleanup(self, parts: Sequence[int], ns: str) -> int:
        state = {text(k): text(v) for k, v in
                 (await self.redis.hgetall(self.keys.replay_state())).items()}
        by_ns: dict[str, list[int]] = {}
        for name, old in state.items():
            if name.startswith("old:") and old != ns:
                by_ns.setdefault(old, []).append(int(name[4:]))
        deleted = 0
        for old, olds in by_ns.items():
            deleted += await delete_namespace(self.redis, self.keys, old, olds)
        return deleted
