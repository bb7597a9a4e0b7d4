"""Building a projection namespace straight from the log (replay and verify).

:meth:`Builder.build` reads a partition's stream with XRANGE after the namespace's
own checkpoint (so an interrupted build resumes where it stopped) and applies it
with the projector's applier in ``build`` mode: same preparation, same Lua, same
checkpoint rule as live, no lease, no signal. Each round trip applies one chunk and
reads the next in the same pipeline; several partitions build concurrently so
decoding in Python overlaps the script running in Redis.

When the stream was trimmed past the namespace's checkpoint (retention:
consumers/retention/), the entries come from the archive segments and then the
stream (streams/archive/reader.py ``LogReader``), one chunk at a time; a segment
that is missing or corrupt fails the build loudly, naming it.

Entries live would dead-letter (undecodable, unknown type or version, breaking a rule
of streams/entries.py, refused by a projection, a duplicate event id) are skipped the
same way and counted; nothing is written to the dead-letter streams.

With ``track`` every key the build writes is recorded in the namespace's registry
(``Keys.ns_registry``), so a snapshot lists and deletes it without a SCAN.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consumers.group.handler import Entry, entries_of
from herald.consumers.projection.applier import BUILD, GROUP, Applier, Prepared, Preparer
from herald.streams.archive import LogReader, SegmentStore, open_storage
from herald.streams.archive.archiver import TRIMMED_TO, trimmed_to
from herald.streams.archive.segments import successor
from herald.streams.connection import Batch, text
from herald.streams.keys import Keys
from herald.streams.positions import parse
from herald.streams.settings import Settings

ORIGIN = "0-0"

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


def _trimmed_past(trim: Any, cursor: str | None) -> bool:
    """Whether a trim point read (HGET reply) is past the entry after ``cursor``: some
    entries the build has not read yet may be in the archive only."""
    if isinstance(trim, Exception):
        raise trim
    if trim is None:
        return False
    return parse(text(trim)) > parse(successor(cursor or ORIGIN))


def _rows(replies: Sequence[Any]) -> Sequence[Any]:
    """The XRANGE reply among a batch's replies ([] when none was sent)."""
    if not replies:
        return []
    if isinstance(replies[0], Exception):
        raise replies[0]
    return replies[0] or []


class Builder:
    """Applies the log to a namespace; one per process and client."""

    def __init__(self, redis: Any, settings: Settings, progress: Progress | None = None,
                 reader: LogReader | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.preparer = Preparer(settings)
        self.applier = Applier(redis, settings)
        self.progress = progress
        self._reader = reader

    @property
    def reader(self) -> LogReader:
        """The reader of archive segments + stream (opened on first use)."""
        if self._reader is None:
            segments = SegmentStore(open_storage(self.settings.archive_location))
            self._reader = LogReader(self.redis, self.keys, segments)
        return self._reader

    async def checkpoint(self, partition: int, ns: str) -> str | None:
        value = await self.redis.get(self.keys.checkpoint(partition, ns, GROUP))
        return None if value is None else text(value)

    async def build(
        self, partition: int, ns: str, until: str | None = None, stats: BuildStats | None = None,
        *, track: bool = False, only_user: str | None = None,
    ) -> BuildStats:
        """Apply the entries after ``ns``'s checkpoint up to ``until`` (default: the end);
        ``only_user``: only that user's (consumers/retention/as_of.py)."""
        stats = BuildStats() if stats is None else stats
        stream = self.keys.stream(partition)
        ckpt = await self.checkpoint(partition, ns)
        trimmed = await trimmed_to(self.redis, self.keys, partition)
        if trimmed is not None and parse(successor(ckpt or ORIGIN)) < parse(trimmed):
            return await self._from_archive(partition, ns, ckpt, until, stats, track, only_user)
        # The stream alone, each chunk's read sent with the previous chunk's apply. Each
        # read is followed by the trim point: retention in another process may trim
        # while this build reads (XTRIM and the trim point change in one transaction),
        # and a read that found entries gone goes on from the archive instead.
        end = "+" if until is None else until
        state = self.keys.archive_state(partition)
        cursor = ckpt
        first = Batch(self.redis)
        first.execute_command("XRANGE", stream, "-" if ckpt is None else "(" + ckpt, end,
                              "COUNT", BUILD_CHUNK)
        first.execute_command("HGET", state, TRIMMED_TO)
        replies = await first.execute()
        rows, trim = _rows(replies[:1]), replies[1]
        while True:
            if _trimmed_past(trim, cursor):
                return await self._from_archive(partition, ns, cursor, until, stats, track,
                                                only_user)
            if not rows:
                return stats
            entries = entries_of(rows)
            batch = self.preparer.prepare(partition, ns, entries, only_user=only_user)
            more = len(rows) == BUILD_CHUNK
            call = self.applier.call_args(partition, ns, batch, mode=BUILD, track=track)
            step = Batch(self.redis)
            self.applier.queue(step, *call)
            if more:
                step.execute_command("XRANGE", stream, "(" + entries[-1].position, end,
                                     "COUNT", BUILD_CHUNK)
                step.execute_command("HGET", state, TRIMMED_TO)
            replies = await step.execute()
            rows, trim = (_rows(replies[1:2]), replies[2]) if more else ([], None)
            self._count(partition, entries, batch, await self.applier.resend(replies[0], *call),
                        stats)
            cursor = entries[-1].position

    async def _from_archive(self, partition: int, ns: str, after: str | None,
                            until: str | None, stats: BuildStats, track: bool,
                            only_user: str | None) -> BuildStats:
        """Apply the entries after ``after`` through the archive reader (segments, then
        the stream)."""
        async for chunk in self.reader.chunks(partition, after, until, BUILD_CHUNK):
            entries = [Entry(position, raw) for position, raw in chunk]
            await self._apply_chunk(partition, ns, entries, stats, track, only_user)
        return stats

    async def _apply_chunk(self, partition: int, ns: str, entries: list[Entry],
                           stats: BuildStats, track: bool, only_user: str | None) -> None:
        batch = self.preparer.prepare(partition, ns, entries, only_user=only_user)
        call = self.applier.call_args(partition, ns, batch, mode=BUILD, track=track)
        self._count(partition, entries, batch, await self.applier.call(*call), stats)

    def _count(self, partition: int, entries: list[Entry], batch: Prepared, reply: Any,
               stats: BuildStats) -> None:
        """Check one applied chunk's reply and count it (RuntimeError when refused)."""
        if isinstance(reply, Exception):
            raise reply
        result = Applier.parse(reply)
        if result.status != "ok":
            raise RuntimeError(f"build of partition {partition} refused: {result.status}")
        stats.entries += len(entries)
        for entry, outcome in zip(entries, result.marked(entries, batch.outcomes), strict=True):
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
