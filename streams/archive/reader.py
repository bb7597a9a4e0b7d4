"""Reading a partition's whole log: archive segments first, then the stream.

:meth:`LogReader.chunks` yields every entry of a partition in a position range, in
log order, each exactly once, wherever it lives now — also while an :class:`Archiver`
writes segments and trims the stream concurrently. Each stream read is one MULTI with
the partition's ``trimmed_to``, so the reader knows whether entries after its cursor
left the stream since it listed the segments; it then lists the segments again and
reads on from them.

It never skips: a range that is neither in a segment nor in the stream (a segment
deleted, a first segment that does not start at the beginning, the stream trimmed
beyond the segments) raises :class:`ArchiveError` naming the partition and the
missing range; a missing or corrupt segment raises ArchiveError naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis as redis_errors

from herald.streams.archive.archiver import TRIMMED_TO
from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.segments import Entry, Segment, SegmentStore, folder, successor
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import text
from herald.streams.keys import Keys
from herald.streams.positions import parse

ORIGIN = "0-0"  # below every entry (XADD refuses the id 0-0)


class LogReader:
    """Reads partitions of one prefix from its segments and streams."""

    def __init__(self, redis: Any, keys: Keys, segments: SegmentStore) -> None:
        self.redis = redis
        self.keys = keys
        self.segments = segments

    async def chunks(
        self, partition: int, after: str | None, until: str | None, size: int = 500
    ) -> AsyncIterator[list[tuple[str, bytes | None]]]:
        """Lists of at most ``size`` ``(position, raw)`` entries with ``after <
        position <= until`` (``after`` None: from the first entry; ``until`` None: to
        the stream's last entry when the call starts), in log order, each once.

        ``raw`` is the entry's ``e`` field (None when the entry has none). Raises
        ValueError for a bad position or size, ArchiveError as the module says.
        """
        if size < 1:
            raise ValueError("size must be at least 1")
        cursor = after or ORIGIN
        parse(cursor)
        end = until if until is not None else await self._end(partition)
        if end is None:
            return
        listed = await self.segments.segments(partition)
        while parse(cursor) < parse(end):
            for segment in listed:
                if parse(segment.last) <= parse(cursor):
                    continue
                if parse(cursor) >= parse(end):
                    return
                entries = await self._segment(segment, cursor, end)
                for start in range(0, len(entries), size):
                    yield list(entries[start : start + size])
                cursor = min(segment.last, end, key=parse)
            # The stream, from the cursor, until an entry after it is found trimmed.
            gap = None
            while parse(cursor) < parse(end):
                trimmed, rows = await self._stream(partition, cursor, end, size)
                if trimmed is not None and parse(trimmed) > parse(successor(cursor)):
                    gap = trimmed
                    break
                if rows:
                    yield rows
                    cursor = rows[-1][0]
                if len(rows) < size:
                    return
            if gap is None:
                return
            listed = await self.segments.segments(partition)
            if not any(parse(s.last) > parse(cursor) for s in listed):
                raise ArchiveError(
                    folder(partition), f"entries after {cursor} up to before "
                    f"{min(gap, successor(end), key=parse)} were trimmed from the stream "
                    f"and are in no segment", partition=partition)

    async def _segment(self, segment: Segment, cursor: str, end: str) -> list[Entry]:
        """The segment's entries in (cursor, end]; ArchiveError when segments before it
        that the range needs are missing."""
        content = await self.segments.load(segment)
        if content.prev is not None and parse(content.prev) > parse(cursor):
            raise ArchiveError(
                segment.name, f"the segment before it (ending at {content.prev}) is "
                f"missing: entries after {cursor} up to {content.prev} are in no segment",
                partition=segment.partition)
        low, high = parse(cursor), parse(end)
        if low < parse(segment.first) and parse(segment.last) <= high:
            return content.entries
        return [e for e in content.entries if low < parse(e[0]) <= high]

    async def _stream(
        self, partition: int, cursor: str, end: str, size: int
    ) -> tuple[str | None, list[Entry]]:
        """``trimmed_to`` and up to ``size`` stream entries in (cursor, end], read in one
        MULTI so the first says whether the second can be missing entries."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.archive_state(partition), TRIMMED_TO)
            pipe.xrange(self.keys.stream(partition), min="(" + cursor, max=end, count=size)
            trimmed, rows = await pipe.execute()
        return (None if trimmed is None else text(trimmed)), _entries(rows)

    async def _end(self, partition: int) -> str | None:
        """The stream's last id now (or the last archived position when the stream is
        gone); None when the partition has no log at all."""
        try:
            info = await self.redis.xinfo_stream(self.keys.stream(partition))
        except redis_errors.ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            return await self.segments.archived_to(partition)
        return text(info["last-generated-id"])


def _entries(rows: Sequence[Any]) -> list[Entry]:
    return [(text(position), fields.get(ENTRY_FIELD)) for position, fields in rows]
