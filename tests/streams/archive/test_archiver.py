"""The archiver: segments plus stream hold every entry exactly once; trims are bounded by
the consumer groups; reruns write nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from herald.streams.archive.archiver import (
    READ_CHUNK,
    Archiver,
    TrimBound,
    predecessor,
    safe_trim_point,
)
from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.reader import LogReader
from herald.streams.archive.segments import SegmentStore, successor
from herald.streams.archive.storage import Storage
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import text
from herald.streams.keys import Keys
from herald.streams.positions import MAX_SEQ, parse
from tests.streams.archive.helpers import (
    PARTITION,
    append,
    read_log,
    stream_entries,
    union,
)


@pytest.fixture
def archiver(redis: Any, keys: Keys, store: SegmentStore) -> Archiver:
    return Archiver(redis, keys, store)


def test_predecessor_is_the_previous_position() -> None:
    assert predecessor("5-3") == "5-2"
    assert predecessor("5-0") == f"4-{MAX_SEQ}"
    assert predecessor("0-0") is None


async def test_archive_then_trim_keeps_every_entry_once(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, 1000)
    upto = entries[699][0]
    report = await archiver.archive(PARTITION, upto, segment_entries=300)
    assert (report.segments, report.entries) == (3, 700)
    assert report.trimmed_to == successor(upto)
    assert report.seconds >= 0
    segments = await store.segments(PARTITION)
    assert [(s.first, s.last) for s in segments] == [
        (entries[0][0], entries[299][0]), (entries[300][0], entries[599][0]),
        (entries[600][0], entries[699][0])]
    assert await stream_entries(redis, keys) == entries[700:]
    assert await union(redis, keys, store) == entries
    state = await redis.hget(keys.archive_state(PARTITION), "trimmed_to")
    assert text(state) == successor(upto)
    # the rest, in a later run
    report = await archiver.archive(PARTITION, entries[-1][0], segment_entries=300)
    assert (report.segments, report.entries) == (1, 300)
    assert await stream_entries(redis, keys) == []
    assert await union(redis, keys, store) == entries


async def test_archiving_twice_changes_nothing(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, 500)
    upto = entries[349][0]
    await archiver.archive(PARTITION, upto, segment_entries=100)
    names = await store.storage.list("")
    again = await archiver.archive(PARTITION, upto, segment_entries=100)
    assert (again.segments, again.entries, again.trimmed_to) == (0, 0, successor(upto))
    assert await store.storage.list("") == names
    assert await union(redis, keys, store) == entries


async def test_segment_written_but_not_trimmed_is_not_written_again(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    """As after a crash between the segment's put and the trim."""
    entries = await append(redis, keys, 300)
    await store.write(PARTITION, entries[:200])
    report = await archiver.archive(PARTITION, entries[149][0], segment_entries=1000)
    assert (report.segments, report.entries) == (0, 0)
    # trimmed only up to `upto`, although the segment holds more
    assert report.trimmed_to == successor(entries[149][0])
    assert await stream_entries(redis, keys) == entries[150:]
    report = await archiver.archive(PARTITION, entries[-1][0], segment_entries=1000)
    assert (report.segments, report.entries) == (1, 100)
    assert await union(redis, keys, store) == entries


async def test_read_chunk_ending_exactly_at_upto(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, READ_CHUNK + 200)
    report = await archiver.archive(PARTITION, entries[READ_CHUNK - 1][0])
    assert (report.segments, report.entries) == (1, READ_CHUNK)
    assert await union(redis, keys, store) == entries


async def test_deleted_and_fieldless_entries(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, 50)
    odd = text(await redis.xadd(keys.stream(PARTITION), {b"other": b"x"}))
    entries += [(odd, None)] + await append(redis, keys, 10, start=50)
    gone = {entries[3][0], entries[20][0]}
    await redis.xdel(keys.stream(PARTITION), *gone)
    await archiver.archive(PARTITION, entries[-1][0], segment_entries=7)
    assert await union(redis, keys, store) == [e for e in entries if e[0] not in gone]


async def test_upto_beyond_the_stream_end_and_empty_stream(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    report = await archiver.archive(PARTITION, "99999999999999-0")
    assert (report.segments, report.trimmed_to) == (0, None)
    entries = await append(redis, keys, 5)
    report = await archiver.archive(PARTITION, "99999999999999-0")
    assert report.trimmed_to == successor(entries[-1][0])
    assert await union(redis, keys, store) == entries


async def test_archiving_after_segments_were_removed_fails_loudly(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, 100)
    await archiver.archive(PARTITION, entries[49][0], segment_entries=20)
    last = (await store.segments(PARTITION))[-1]
    await store.storage.delete(last.name)
    with pytest.raises(ArchiveError, match="segments are missing") as caught:
        await archiver.archive(PARTITION, entries[-1][0])
    assert f"partition {PARTITION}" in str(caught.value)


async def test_bad_arguments(archiver: Archiver) -> None:
    with pytest.raises(ValueError):
        await archiver.archive(PARTITION, "not-a-position")
    with pytest.raises(ValueError):
        await archiver.archive(PARTITION, "1-0", segment_entries=0)


# ------------------------------------------------------------------ safe trim point
async def _read(redis: Any, keys: Keys, group: str, count: int) -> list[str]:
    reply = await redis.xreadgroup(group, "c1", {keys.stream(PARTITION): ">"}, count=count)
    return [text(pos) for pos, _ in reply[0][1]] if reply else []


async def test_no_stream_or_no_group_gives_no_bound(redis: Any, keys: Keys) -> None:
    assert await safe_trim_point(redis, keys, PARTITION) is None
    await append(redis, keys, 5)
    assert await safe_trim_point(redis, keys, PARTITION) is None
    await redis.xgroup_create(keys.stream(PARTITION), "idle", id="0")
    # delivered nothing: nothing may go, and the group is named
    assert await safe_trim_point(redis, keys, PARTITION) == TrimBound("0-0", "idle")


async def test_pending_and_unread_entries_bound_the_trim(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, 40)
    stream = keys.stream(PARTITION)
    await redis.xgroup_create(stream, "fast", id="0")
    await redis.xgroup_create(stream, "slow", id="0")
    read = await _read(redis, keys, "fast", 40)
    await redis.xack(stream, "fast", *read)
    assert await safe_trim_point(redis, keys, PARTITION) == TrimBound("0-0", "slow")
    # slow: read 30, acked the first 10 and the 15th: the 11th is its oldest pending
    read = await _read(redis, keys, "slow", 30)
    await redis.xack(stream, "slow", *read[:10], read[14])
    bound = await safe_trim_point(redis, keys, PARTITION)
    assert bound == TrimBound(predecessor(entries[10][0]) or "", "slow")
    assert parse(entries[9][0]) <= parse(bound.position) < parse(entries[10][0])
    # fast's bound is its last delivered entry once slow is done
    await redis.xack(stream, "slow", *read)
    bound = await safe_trim_point(redis, keys, PARTITION)
    assert bound == TrimBound(entries[29][0], "slow")
    await _read(redis, keys, "slow", 10)
    await redis.xack(stream, "slow", *(e[0] for e in entries))
    assert await safe_trim_point(redis, keys, PARTITION) == TrimBound(entries[-1][0], "fast")


async def test_archiving_up_to_the_bound_keeps_pending_entries_in_the_stream(
    redis: Any, keys: Keys, store: SegmentStore, archiver: Archiver
) -> None:
    entries = await append(redis, keys, 40)
    stream = keys.stream(PARTITION)
    await redis.xgroup_create(stream, "g", id="0")
    read = await _read(redis, keys, "g", 25)
    await redis.xack(stream, "g", *read[:12])
    bound = await safe_trim_point(redis, keys, PARTITION)
    assert bound is not None
    await archiver.archive(PARTITION, bound.position)
    assert await stream_entries(redis, keys) == entries[12:]
    # the pending entries can still be claimed and acked
    claimed = await redis.xclaim(stream, "g", "c2", 0, [e[0] for e in entries[12:25]])
    assert [fields[ENTRY_FIELD] for _, fields in claimed] == [e[1] for e in entries[12:25]]
    assert await union(redis, keys, store) == entries


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_archive_folder_is_only_segments(
    redis: Any, keys: Keys, archiver: Archiver, archive_root: Path
) -> None:
    entries = await append(redis, keys, 10)
    await archiver.archive(PARTITION, entries[-1][0], segment_entries=4)
    files = _files(archive_root)
    assert len(files) == 3
    assert all(f.startswith(f"segments/p{PARTITION:04d}/") and f.endswith(".seg") for f in files)


async def test_archive_and_read_back_on_each_storage(
    redis: Any, keys: Keys, storage: Storage
) -> None:
    """The same run on a folder and on an S3 bucket."""
    entries = await append(redis, keys, 300)
    store = SegmentStore(storage)
    report = await Archiver(redis, keys, store).archive(PARTITION, entries[249][0],
                                                        segment_entries=100)
    assert (report.segments, report.entries) == (3, 250)
    assert await union(redis, keys, store) == entries
    assert await read_log(LogReader(redis, keys, store), size=64) == entries


def test_an_entry_not_of_the_one_field_e_is_archived_without_bytes() -> None:
    """Consumers dead-letter it (PROTOCOL.md), so a replay from the archive must skip it
    as live did: its segment record has no bytes."""
    from herald.streams.archive.archiver import _entry

    assert _entry((b"1-1", [b"e", b"x"])) == ("1-1", b"x")
    assert _entry((b"1-2", [b"e", b"x", b"trace", b"1"])) == ("1-2", None)
    assert _entry((b"1-3", [b"event", b"x"])) == ("1-3", None)
    assert _entry((b"1-4", {b"e": b"x"})) == ("1-4", b"x")
    assert _entry((b"1-5", {b"e": b"x", b"t": b"1"})) == ("1-5", None)
