"""Building a projection namespace straight from the log (replay and verify).

:meth:`Builder.build` reads a partition's stream with XRANGE after the namespace's
own checkpoint (so an interrupted build resumes where it stopped) and applies it
with the projector's applier in ``build`` mode: same preparation, same Lua, same
checkpoint rule as live, no lease, no signal. Each round trip applies one chunk and
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

from herald.consumers.group.handler import entries_of
from herald.consumers.projection.applier import BUILD, GROUP, Applier, Preparer
from herald.streams.connection import Batch, text
from herald.streams.keys import Keys
from herald.streams.settings import Settings

# Entries per script call. Small on purpose: Redis writes a client at most 64 KB per
# event-loop turn while other clients' scripts run, so a big chunk's read stalls.
BUILD_CHUNK = 180
BUILD_CONCURRENCY = 6  # partitions built at once (Python prepares one while Redis applies others)

Progress = Callable[[int], None]


@dataclass(slots=True)
class BuildStats:
    """What a build applied: entries read, and skipped ones by reason (first few)."""

    entries: int = 0
    skipped: int = 0
    reasons: dict[str, str] = field(default_factory=dict)  # position → reason, first 20


def _rows(replies: Sequence[Any]) -> Sequence[Any]:
    """The XRANGE reply among a batch's replies ([] when none was sent)."""
    if not replies:
        return []
    if isinstance(replies[0], Exception):
        raise replies[0]
    return replies[0] or []


class Builder:
    """Applies the log to a namespace; one per process and client."""

    def __init__(self, redis: Any, settings: Settings, progress: Progress | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.preparer = Preparer(settings)
        self.applier = Applier(redis, settings)
        self.progress = progress

    async def checkpoint(self, partition: int, ns: str) -> str | None:
        value = await self.redis.get(self.keys.checkpoint(partition, ns, GROUP))
        return None if value is None else text(value)

    async def build(
        self, partition: int, ns: str, until: str | None = None, stats: BuildStats | None = None
    ) -> BuildStats:
        """Apply the entries after ``ns``'s checkpoint up to ``until`` (default: the end)."""
        stats = BuildStats() if stats is None else stats
        stream = self.keys.stream(partition)
        ckpt = await self.checkpoint(partition, ns)
        end = "+" if until is None else until
        first = Batch(self.redis)
        first.execute_command("XRANGE", stream, "-" if ckpt is None else "(" + ckpt, end,
                              "COUNT", BUILD_CHUNK)
        rows = _rows(await first.execute())
        while rows:
            entries = entries_of(rows)
            batch = self.preparer.prepare(partition, ns, entries)
            more = len(rows) == BUILD_CHUNK
            call = self.applier.call_args(partition, ns, batch, mode=BUILD)
            step = Batch(self.redis)
            self.applier.queue(step, *call)
            if more:
                step.execute_command("XRANGE", stream, "(" + entries[-1].position, end,
                                     "COUNT", BUILD_CHUNK)
            replies = await step.execute()
            rows = _rows(replies[1:])
            reply = await self.applier.resend(replies[0], *call)
            if isinstance(reply, Exception):
                raise reply
            result = Applier.parse(reply)
            if result.status != "ok":
                raise RuntimeError(f"build of partition {partition} refused: {result.status}")
            stats.entries += len(entries)
            for entry, outcome in zip(entries, batch.outcomes, strict=True):
                if outcome is not None:
                    stats.skipped += 1
                    if len(stats.reasons) < 20:
                        stats.reasons[f"{partition}:{entry.position}"] = outcome.reason
            if self.progress is not None:
                self.progress(len(entries))
        return stats

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
