"""Archive segments: immutable files holding consecutive entries of one partition.

A segment is a container of kind ``"segment"`` whose records are ``[position, raw]``
pairs in log order (``raw`` is the entry's ``e`` field, None when the entry had none)
and whose header names the ``partition``, the ``first`` and ``last`` positions and
``prev``, the last position of the segment before it (None for the partition's first
segment), so a missing segment is detected rather than skipped. Its name is
``segments/p0007/<padded first>_<padded last>.seg``: names sort in log order.

Guarantees: segments of a partition never overlap (:meth:`SegmentStore.write`
refuses a segment that does not start after the last one); a written segment has been
read back and verified; :meth:`SegmentStore.read` returns a segment's entries exactly
or raises :class:`ArchiveError` naming it (missing, corrupt, or not what its name
says). The files are the truth about what is archived: :meth:`archived_to` reads
them, not Redis.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from herald.streams.archive.container import pack_container, unpack_container
from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.storage import Storage
from herald.streams.positions import MAX_SEQ, is_position, padded, parse, unpadded

KIND = "segment"
ROOT = "segments"
_NAME = re.compile(r"^segments/p(\d{4})/(\d{15}-\d{20})_(\d{15}-\d{20})\.seg$")

Entry = tuple[str, bytes | None]  # (position, raw entry bytes)


def successor(position: str) -> str:
    """The smallest position after ``position`` ("ms-seq" → "ms-(seq+1)")."""
    ms, seq = parse(position)
    return f"{ms + 1}-0" if seq == MAX_SEQ else f"{ms}-{seq + 1}"


def folder(partition: int) -> str:
    """The folder of a partition's segments (with a trailing ``/``)."""
    return f"{ROOT}/p{partition:04d}/"


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a partition, as its name describes it."""

    partition: int
    first: str
    last: str
    name: str

    @classmethod
    def named(cls, partition: int, first: str, last: str) -> Segment:
        name = f"{folder(partition)}{padded(first)}_{padded(last)}.seg"
        return cls(partition, first, last, name)


@dataclass(frozen=True, slots=True)
class SegmentContent:
    """A verified segment's entries and the last position of the segment before it."""

    segment: Segment
    prev: str | None
    entries: list[Entry]


class SegmentStore:
    """The archive segments of every partition in one :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def segments(self, partition: int) -> list[Segment]:
        """The partition's segments in log order; names that are not segments (staging
        files, other partitions, foreign files) are ignored. ArchiveError when two
        segments overlap (two archivers ran at once on the partition)."""
        found: list[Segment] = []
        for name in await self.storage.list(folder(partition)):
            match = _NAME.match(name)
            if match is None or int(match.group(1)) != partition:
                continue
            first, last = unpadded(match.group(2)), unpadded(match.group(3))
            if parse(first) > parse(last):
                continue
            found.append(Segment(partition, first, last, name))
        found.sort(key=lambda s: parse(s.first))
        for before, after in itertools.pairwise(found):
            if parse(after.first) <= parse(before.last):
                raise ArchiveError(after.name, f"overlaps {before.name}", partition=partition)
        return found

    async def archived_to(self, partition: int) -> str | None:
        """The last position of the partition's last segment; None when it has none."""
        found = await self.segments(partition)
        return found[-1].last if found else None

    async def write(self, partition: int, entries: Sequence[Entry]) -> Segment:
        """Store ``entries`` (consecutive, in log order, after the last segment) as one
        new segment, read it back and verify it.

        Raises ValueError for no entries or entries out of order, ArchiveError when
        they do not start after the last segment or the stored segment does not read
        back exactly (it is deleted then).
        """
        if not entries:
            raise ValueError("a segment holds at least one entry")
        first, last = parse(entries[0][0]), parse(entries[-1][0])
        if first > last:  # a stream's XRANGE is ordered; the reader checks every entry
            raise ValueError(f"segment entries of partition {partition} are not in log order")
        segment = Segment.named(partition, entries[0][0], entries[-1][0])
        prev = await self.archived_to(partition)
        if prev is not None and parse(prev) >= first:
            raise ArchiveError(segment.name, f"does not start after the last segment, "
                               f"which ends at {prev}", partition=partition)
        data = pack_container(
            KIND, {"partition": partition, "first": segment.first, "last": segment.last,
                   "prev": prev},
            ([position, raw] for position, raw in entries),
        )
        await self.storage.put(segment.name, data)
        try:  # verified after write: storage holds exactly the checksummed bytes packed
            back = await self.storage.get(segment.name)
            if back != data:
                raise ArchiveError(segment.name, "verify after write: stored bytes differ",
                                   partition=partition)
        except ArchiveError:
            await self.storage.delete(segment.name)
            raise
        return segment

    async def load(self, segment: Segment) -> SegmentContent:
        """The segment's verified entries; ArchiveError naming it when it is missing,
        corrupt, or not what its name says."""
        try:
            data = await self.storage.get(segment.name)
        except ArchiveError as exc:
            raise ArchiveError(exc.name, exc.reason, partition=segment.partition) from exc
        return self._verify(segment, data)

    async def read(self, segment: Segment) -> list[Entry]:
        """The segment's entries in log order (see :meth:`load`)."""
        return (await self.load(segment)).entries

    def _verify(self, segment: Segment, data: bytes) -> SegmentContent:
        p = segment.partition

        def fail(reason: str) -> ArchiveError:
            return ArchiveError(segment.name, reason, partition=p)

        try:
            container = unpack_container(data, kind=KIND, name=segment.name)
        except ArchiveError as exc:
            raise fail(exc.reason) from exc
        head = container.header
        for field, want in (("partition", p), ("first", segment.first), ("last", segment.last)):
            if head.get(field) != want:
                raise fail(f"header {field} is {head.get(field)!r}, its name says {want!r}")
        prev = head.get("prev")
        if prev is not None and not is_position(prev):
            raise fail(f"header prev {prev!r} is not a position")
        entries = [_entry(record, fail) for record in container.records]
        keys = [parse(position) for position, _ in entries]
        if not keys or keys[0] != parse(segment.first) or keys[-1] != parse(segment.last):
            raise fail("entries do not run from its first to its last position")
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise fail("entries are not in log order")
        if prev is not None and parse(prev) >= keys[0]:
            raise fail(f"header prev {prev} is not before its first entry")
        return SegmentContent(segment, prev, entries)


def _entry(record: Any, fail: Callable[[str], ArchiveError]) -> Entry:
    if (not isinstance(record, list) or len(record) != 2 or not is_position(record[0])
            or not (record[1] is None or isinstance(record[1], bytes))):
        raise fail(f"not a [position, bytes] record: {record!r:.80}")
    return record[0], record[1]
