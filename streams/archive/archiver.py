"""The archiver: copies a partition's oldest entries into segments, then trims the stream.

:meth:`Archiver.archive` reads the entries after the last segment (the files are the
truth, not a Redis record) up to ``upto``, writes them as segments, and only then
trims the stream below the first entry not archived, recording that point
(``trimmed_to``) in the same MULTI. A kill at any moment loses and duplicates nothing:

- a segment is stored atomically and verified; one stored but not yet trimmed is not
  written again (the next run starts after it) and the stream is trimmed on that run;
- XTRIM MINID is idempotent, and runs atomically with the ``trimmed_to`` record, which
  only ever moves forward;
- entries deleted from the stream (XDEL) are simply absent from the segments.

One archiver per partition at a time (two would race to write overlapping segments,
which :class:`SegmentStore` refuses). :func:`safe_trim_point` says how far the
consumer groups allow it to go.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis as redis_errors

from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.segments import Entry, SegmentStore, folder, successor
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import Batch, text
from herald.streams.keys import Keys
from herald.streams.positions import MAX_SEQ, parse

READ_CHUNK = 5000  # entries per XRANGE
NOTHING = "0-0"  # a trim bound below every entry
TRIMMED_TO = "trimmed_to"  # the field of keys.archive_state(p)


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What one :meth:`Archiver.archive` run did."""

    partition: int
    segments: int  # segments written by this run
    entries: int  # entries in them
    trimmed_to: str | None  # the stream's MINID after the run (None: never trimmed)
    seconds: float


@dataclass(frozen=True, slots=True)
class TrimBound:
    """How far the stream may be trimmed: up to and including ``position``, held back
    by ``group`` (the group that is most behind)."""

    position: str
    group: str


def predecessor(position: str) -> str | None:
    """The greatest position before ``position``; None for ``0-0``."""
    ms, seq = parse(position)
    if seq:
        return f"{ms}-{seq - 1}"
    return None if ms == 0 else f"{ms - 1}-{MAX_SEQ}"


async def trimmed_to(redis: Any, keys: Keys, partition: int) -> str | None:
    """The MINID the partition's stream was last trimmed to; None when never trimmed."""
    value = await redis.hget(keys.archive_state(partition), TRIMMED_TO)
    return None if value is None else text(value)


async def safe_trim_point(redis: Any, keys: Keys, partition: int) -> TrimBound | None:
    """The highest position at or below which every consumer group of the partition's
    stream is done (delivered and acked), and the group most behind.

    Per group: the lesser of its last delivered id and the position just before its
    oldest pending entry. ``0-0`` (below every entry: nothing may go) with the group's
    name when a group has delivered nothing or its oldest pending entry is the first
    possible one; None when the stream has no group (nothing says it is safe). Read
    without a lock, so it may lag the groups: it is never beyond them.
    """
    stream = keys.stream(partition)
    try:
        groups = await redis.xinfo_groups(stream)
    except redis_errors.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    best: tuple[tuple[int, int], TrimBound] | None = None
    for info in groups:
        name = text(info["name"])
        bound = text(info["last-delivered-id"])
        if parse(bound) == (0, 0):
            return TrimBound(NOTHING, name)
        if int(info["pending"]):
            summary = await redis.xpending(stream, name)
            oldest = summary.get("min")
            if oldest is not None:
                before = predecessor(text(oldest))
                if before is None:
                    return TrimBound(NOTHING, name)
                bound = min(bound, before, key=parse)
        key = parse(bound)
        if best is None or key < best[0]:
            best = (key, TrimBound(bound, name))
    return None if best is None else best[1]


def _entry(row: Any) -> Entry:
    """``(position, raw)`` of one raw XRANGE row (``[id, [field, value, ...]]``); raw is
    None for an entry that is not the one field ``e`` (every consumer dead-letters it,
    with its fields: PROTOCOL.md), so a replay from the archive skips it as live did."""
    position, fields = row
    raw = None
    if type(fields) is dict:  # a Cluster client's pipeline parses the reply
        if len(fields) == 1:
            raw = fields.get(ENTRY_FIELD)
    elif fields is not None and len(fields) == 2 and fields[0] == ENTRY_FIELD:
        raw = fields[1]
    return text(position), raw


class Archiver:
    """Archives partitions of one prefix into one :class:`SegmentStore`."""

    def __init__(self, redis: Any, keys: Keys, segments: SegmentStore) -> None:
        self.redis = redis
        self.keys = keys
        self.segments = segments

    async def archive(
        self, partition: int, upto: str, *, segment_entries: int = 50_000
    ) -> ArchiveReport:
        """Archive the entries after the last segment up to and including ``upto`` in
        segments of at most ``segment_entries`` entries, then trim the stream to the
        first position after the last archived entry (never beyond ``upto``).

        Callers pass ``min(safe_trim_point(...), their own bound)`` as ``upto``.
        Raises ValueError for a bad ``upto`` or size; ArchiveError when the stream was
        trimmed beyond the segments (segments were removed) or a segment cannot be
        written; Redis errors as they come (a rerun continues).
        """
        if segment_entries < 1:
            raise ValueError("segment_entries must be at least 1")
        limit = parse(upto)
        started = time.monotonic()
        archived = await self.segments.archived_to(partition)
        await self._check_covered(partition, archived)
        written = count = 0
        buffer: list[Entry] = []
        cursor = archived
        while cursor is None or parse(cursor) < limit:
            want = min(READ_CHUNK, segment_entries - len(buffer))
            read = Batch(self.redis)  # raw replies: no per-entry dict to build
            read.execute_command("XRANGE", self.keys.stream(partition),
                                 "-" if cursor is None else "(" + cursor, upto, "COUNT", want)
            [rows] = await read.execute()
            if isinstance(rows, Exception):
                raise rows
            buffer.extend(_entry(row) for row in rows)
            if rows:
                cursor = buffer[-1][0]
            if len(buffer) >= segment_entries:
                archived = (await self.segments.write(partition, buffer)).last
                written, count, buffer = written + 1, count + len(buffer), []
            if len(rows) < want:
                break
        if buffer:
            archived = (await self.segments.write(partition, buffer)).last
            written, count = written + 1, count + len(buffer)
        trimmed: str | None
        if archived is not None:
            trimmed = await self._trim(partition, min(successor(archived), successor(upto),
                                                      key=parse))
        else:
            trimmed = await trimmed_to(self.redis, self.keys, partition)
        return ArchiveReport(partition, written, count, trimmed, time.monotonic() - started)

    async def _check_covered(self, partition: int, archived: str | None) -> None:
        """ArchiveError when the stream lost entries no segment holds."""
        trimmed = await trimmed_to(self.redis, self.keys, partition)
        if trimmed is None:
            return
        if parse(trimmed) > parse(successor(archived or "0-0")):
            raise ArchiveError(
                folder(partition),
                f"the stream was trimmed to {trimmed} but the segments end at "
                f"{archived or 'nothing'}: segments are missing", partition=partition)

    async def _trim(self, partition: int, minid: str) -> str:
        """Trim the stream to ``minid`` and record it, atomically; the record never
        moves back. The trim point after the call."""
        state = self.keys.archive_state(partition)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(state)
                    current = await pipe.hget(state, TRIMMED_TO)
                    if current is not None and parse(text(current)) >= parse(minid):
                        await pipe.reset()
                        return text(current)
                    pipe.multi()
                    pipe.execute_command("XTRIM", self.keys.stream(partition), "MINID", minid)
                    pipe.hset(state, TRIMMED_TO, minid)
                    await pipe.execute()
                    return minid
                except redis_errors.WatchError:
                    continue
