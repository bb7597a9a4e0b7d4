"""``herald replay --verify``: rebuild into a scratch namespace and diff against live.

Per partition: read the live checkpoint C, build the scratch namespace from the newest
snapshot at or before C (``from_start``: from the first entry of the archive) and the
log after it up to exactly C, read both namespaces' keys and values, and read C again; if the
projector moved meanwhile, catch the scratch up and compare again (at most
:data:`VERIFY_ATTEMPTS` times; a partition that never holds still is reported).
Values are compared logically (hash fields, sorted-set members and scores, …), not
by their encoding. Checkpoints of other groups are not compared.

The scratch namespace is deleted before and after. Holds the replay lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.views import Views
from herald.consumers.replay.builder import Builder, BuildStats, Progress
from herald.consumers.replay.rebuild import delete_namespace, replay_lock
from herald.consumers.retention import image
from herald.consumers.retention.snapshots import SnapshotStore
from herald.streams.archive import open_storage
from herald.streams.connection import scan_keys, text
from herald.streams.keys import Keys
from herald.streams.settings import Settings

SCRATCH_NS = "scratch"
VERIFY_ATTEMPTS = 5
SHOW = 120  # characters of a value shown in a difference

Contents = dict[str, Any]  # key suffix (after the namespace) → normalized value


@dataclass(slots=True)
class VerifyReport:
    differences: list[str] = field(default_factory=list)
    compared_keys: int = 0
    stats: BuildStats = field(default_factory=BuildStats)

    @property
    def identical(self) -> bool:
        return not self.differences


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOW else text[: SHOW - 3] + "..."


def diff(partition: int, live: Contents, rebuilt: Contents) -> list[str]:
    """Human-readable differences between two namespaces of one partition."""
    out: list[str] = []
    where = f"partition {partition}"
    for suffix in sorted(set(live) | set(rebuilt)):
        a, b = live.get(suffix), rebuilt.get(suffix)
        if a == b:
            continue
        if b is None:
            out.append(f"{where}: {suffix}: only in live: {_show(a)}")
        elif a is None:
            out.append(f"{where}: {suffix}: only in replay: {_show(b)}")
        elif isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    out.append(f"{where}: {suffix}: field {name!r}: live={_show(a.get(name))} "
                               f"replay={_show(b.get(name))}")
        elif isinstance(a, list) and isinstance(b, list):
            extra, missing = [m for m in a if m not in b], [m for m in b if m not in a]
            out.append(f"{where}: {suffix}: members only in live {_show(extra)}, only in "
                       f"replay {_show(missing)}" if extra or missing else
                       f"{where}: {suffix}: same members, other order or scores")
        else:
            out.append(f"{where}: {suffix}: live={_show(a)} replay={_show(b)}")
    return out


class Verifier:
    def __init__(self, redis: Any, settings: Settings, progress: Progress | None = None, *,
                 from_start: bool = False) -> None:
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.settings = settings
        self.builder = Builder(redis, settings, progress)
        self.views = Views(redis, settings)
        self.from_start = from_start
        self.snapshots = SnapshotStore(open_storage(settings.archive_location),
                                       settings.partitions)

    async def contents(self, partition: int, ns: str) -> Contents:
        """Every key of ``ns`` in the partition, by suffix, with a comparable value."""
        keys: list[str] = []
        async for key in scan_keys(self.redis, self.keys.ns_pattern(ns, partition),
                                   near=[self.keys.tag(partition)]):
            split = self.keys.split_ns_key(key)
            if split is None or split[:2] != (partition, ns):
                continue
            rest = split[2]
            if rest.startswith("ckpt:") and rest != f"ckpt:{GROUP}":
                continue
            keys.append(key)
        keys = sorted(set(keys))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            types = [text(t) for t in await pipe.execute()]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, kind in zip(keys, types, strict=True):
                {"string": pipe.get, "hash": pipe.hgetall, "set": pipe.smembers,
                 "list": lambda k: pipe.lrange(k, 0, -1),
                 "zset": lambda k: pipe.zrange(k, 0, -1, withscores=True),
                 }.get(kind, pipe.type)(key)
            values = await pipe.execute()
        out: Contents = {}
        for key, kind, value in zip(keys, types, values, strict=True):
            suffix = self.keys.split_ns_key(key)[2]  # type: ignore[index]
            if kind == "hash":
                out[suffix] = {text(f): v for f, v in value.items()}
            elif kind == "set":
                out[suffix] = sorted(value)
            elif kind == "zset":
                out[suffix] = [(m, s) for m, s in value]
            else:
                out[suffix] = value
        return out

    async def _checkpoint(self, partition: int, ns: str) -> str | None:
        return await self.builder.checkpoint(partition, ns)

    async def _start(self, partition: int, until: str) -> None:
        """Load the newest snapshot at or before ``until`` into the empty scratch."""
        if self.from_start or await self._checkpoint(partition, SCRATCH_NS) is not None:
            return
        found = await self.snapshots.latest(partition, until)
        if found is not None:
            records = await self.snapshots.read(found)
            await image.load(self.redis, self.keys, partition, SCRATCH_NS, records)

    async def run(self, partitions: Sequence[int] | None = None) -> VerifyReport:
        parts = list(range(self.settings.partitions) if partitions is None else partitions)
        report = VerifyReport()
        async with replay_lock(self.redis, self.keys):
            await delete_namespace(self.redis, self.keys, SCRATCH_NS, parts)
            try:
                for p in parts:
                    report.differences += await self._verify(p, report)
            finally:
                await delete_namespace(self.redis, self.keys, SCRATCH_NS, parts)
        return report

    async def _verify(self, p: int, report: VerifyReport) -> list[str]:
        for _ in range(VERIFY_ATTEMPTS):
            live_ns = (await self.views.read([p]))[p]
            before = await self._checkpoint(p, live_ns)
            if before is not None:
                await self._start(p, before)
                await self.builder.build(p, SCRATCH_NS, until=before, stats=report.stats)
            live = await self.contents(p, live_ns)
            rebuilt = await self.contents(p, SCRATCH_NS)
            if await self._checkpoint(p, live_ns) == before:
                report.compared_keys += len(live)
                return diff(p, live, rebuilt)
        return [f"partition {p}: the live projection kept moving during "
                f"{VERIFY_ATTEMPTS} attempts; verify when it is quieter"]
