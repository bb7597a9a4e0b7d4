"""Building a projection namespace straight from the log (replay and verify).

:meth:`Builder.build` reads a partition's stream with XRANGE after the namespace's
own checkpoint (so an interrupted build resumes where it stopped) and applies it
with the projector's applier in ``build`` mode: same preparation, same Lua, same
checkpoint rule as live, no lease, no signal. A partition not built at all yet is
folded in memory instead (consumers/fold.py) and written as net writes through the
same script, a flush of :data:`FOLD_FLUSH` entries at a time. Each round trip applies one chunk and
reads the next in the same pipeline; several partitions build concurrently so
decoding in Python overlaps the script running in Redis.

Entries live would dead-letter (undecodable, unknown type or version, refused by a
projection) are skipped the same way and counted; nothing is written to the
dead-letter streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.applier import BUILD, GROUP, Applier, Prepared, Preparer
from consumers.fold import InboxFold
from consumers.handler import Entry
from streams.codec import ENTRY_FIELD
from streams.keys import Keys
from streams.settings import Settings

# Entries per script call. Small on purpose: Redis writes a client at most 64 KB per
# event-loop turn while other clients' scripts run, so a big chunk's read stalls.
BUILD_CHUNK = 180
BUILD_CONCURRENCY = 6  # partitions built at once (Python prepares one while Redis applies others)
FOLD_FLUSH = 2000  # entries folded per write (one script call) on the fold path

Progress = Callable[[int], None]


@dataclass(slots=True)
class BuildStats:
    """What a build applied: entries read, and skipped ones by reason (first few)."""

    entries: int = 0
    skipped: int = 0
    reasons: dict[str, str] = field(default_factory=dict)  # position → reason, first 20


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Builder:
    """Applies the log to a namespace; one per process and client."""

    def __init__(self, redis: Any, settings: Settings, progress: Progress | None = None,
                 *, fold: bool = True) -> None:
        self.redis = redis
        self.fold = fold
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.preparer = Preparer(settings)
        self.applier = Applier(redis, settings)
        self.progress = progress

    async def checkpoint(self, partition: int, ns: str) -> str | None:
        value = await self.redis.get(self.keys.checkpoint(partition, ns, GROUP))
        return None if value is None else _text(value)

    async def build(
        self, partition: int, ns: str, until: str | None = None, stats: BuildStats | None = None
    ) -> BuildStats:
        """Apply the entries after ``ns``'s checkpoint up to ``until`` (default: the end).

        A partition with no checkpoint in ``ns`` yet (nothing built there) is folded in
        memory (consumers/fold.py); one with a checkpoint continues on the live path.
        """
        stats = BuildStats() if stats is None else stats
        ckpt = await self.checkpoint(partition, ns)
        if ckpt is None and self.fold:
            if await self._fold(partition, ns, until, stats):
                return stats
            ckpt = await self.checkpoint(partition, ns)  # the fold grew too big: go on
        stream = self.keys.stream(partition)
        end = "+" if until is None else until
        rows = await self.redis.xrange(stream, "-" if ckpt is None else "(" + ckpt, end,
                                       count=BUILD_CHUNK)
        while rows:
            entries = [Entry(_text(pos), fields.get(ENTRY_FIELD)) for pos, fields in rows]
            batch = self.preparer.prepare(partition, ns, entries)
            more = len(rows) == BUILD_CHUNK
            async with self.redis.pipeline(transaction=False) as pipe:
                await self.applier.queue(
                    pipe, *self.applier.call_args(partition, ns, batch, mode=BUILD))
                if more:
                    pipe.xrange(stream, "(" + entries[-1].position, end, count=BUILD_CHUNK)
                replies = await pipe.execute()
            self._check(partition, replies[0])
            self._tally(partition, entries, batch, stats)
            rows = replies[1] if more else []
        return stats

    async def _fold(self, partition: int, ns: str, until: str | None, stats: BuildStats) -> bool:
        """Build the partition from its first entry with an :class:`InboxFold`; False
        when the fold reached its memory bound (what was flushed is applied)."""
        stream = self.keys.stream(partition)
        end = "+" if until is None else until
        fold = InboxFold(self.applier.prefixes(partition, ns), self.settings.inbox_max)
        rows = await self.redis.xrange(stream, "-", end, count=BUILD_CHUNK)
        folded, last = 0, ""
        while rows:
            entries = [Entry(_text(pos), fields.get(ENTRY_FIELD)) for pos, fields in rows]
            batch = self.preparer.prepare(partition, ns, entries)
            fold.feed(batch.records)
            self._tally(partition, entries, batch, stats)
            folded += len(entries)
            last = entries[-1].position
            more = len(rows) == BUILD_CHUNK
            if more and folded < FOLD_FLUSH and not fold.full:
                rows = await self.redis.xrange(stream, "(" + last, end, count=BUILD_CHUNK)
                continue
            read_on = more and not fold.full
            replies = await self._flush(partition, ns, fold, last,
                                        ("(" + last, end) if read_on else None)
            if more and fold.full:
                return False
            folded, rows = 0, replies[1] if read_on else []
        if folded:  # the last page was full and nothing came after it
            await self._flush(partition, ns, fold, last, None)
        return True

    async def _flush(self, partition: int, ns: str, fold: InboxFold, last: str,
                     read: tuple[str, str] | None) -> list[Any]:
        """Write the fold's net changes up to ``last`` (and read the next page)."""
        flushed = Prepared(records=fold.flush(last), target=last)
        async with self.redis.pipeline(transaction=False) as pipe:
            await self.applier.queue(
                pipe, *self.applier.call_args(partition, ns, flushed, mode=BUILD))
            if read is not None:
                pipe.xrange(self.keys.stream(partition), *read, count=BUILD_CHUNK)
            replies: list[Any] = await pipe.execute()
        self._check(partition, replies[0])
        return replies

    @staticmethod
    def _check(partition: int, reply: Any) -> None:
        result = Applier.parse(reply)
        if result.status != "ok":
            raise RuntimeError(f"build of partition {partition} refused: {result.status}")

    def _tally(self, partition: int, entries: list[Entry], batch: Prepared,
               stats: BuildStats) -> None:
        stats.entries += len(entries)
        for entry, outcome in zip(entries, batch.outcomes, strict=True):
            if outcome is not None:
                stats.skipped += 1
                if len(stats.reasons) < 20:
                    stats.reasons[f"{partition}:{entry.position}"] = outcome.reason
        if self.progress is not None:
            self.progress(len(entries))

    async def build_many(
        self, partitions: Sequence[int], ns: str, until: dict[int, str | None] | None = None
    ) -> BuildStats:
        """Build several partitions, :data:`BUILD_CONCURRENCY` at a time."""
        stats = BuildStats()
        gate = asyncio.Semaphore(BUILD_CONCURRENCY)

        async def one(p: int) -> None:
            async with gate:
                await self.build(p, ns, None if until is None else until.get(p), stats)

        await asyncio.gather(*(one(p) for p in partitions))
        return stats

    async def log_length(self, partitions: Sequence[int]) -> int:
        """Entries in the partitions' streams (the total of a progress bar)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xlen(self.keys.stream(p))
            replies = await pipe.execute()
        return sum(int(n) for n in replies)
