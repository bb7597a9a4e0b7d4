"""LogReader: the whole log from segments and stream, exactly once, in order; it fails
loudly on a missing or corrupt segment and stays exact while an archiver trims."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from herald.streams.archive.archiver import Archiver
from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.reader import LogReader
from herald.streams.archive.segments import Segment, SegmentStore
from herald.streams.archive.storage import Storage
from herald.streams.keys import Keys
from tests.streams.archive.helpers import PARTITION, append, read_log


@pytest.fixture
def reader(redis: Any, keys: Keys, store: SegmentStore) -> LogReader:
    return LogReader(redis, keys, store)


async def _archived(redis: Any, keys: Keys, store: SegmentStore, count: int, upto: int,
                    segment_entries: int) -> list[tuple[str, bytes | None]]:
    entries = await append(redis, keys, count)
    await Archiver(redis, keys, store).archive(PARTITION, entries[upto][0],
                                               segment_entries=segment_entries)
    return entries


async def test_empty_partition_reads_nothing(reader: LogReader) -> None:
    assert await read_log(reader) == []


async def test_stream_only(redis: Any, keys: Keys, reader: LogReader) -> None:
    entries = await append(redis, keys, 120)
    assert await read_log(reader, size=7) == entries
    assert await read_log(reader, after=entries[9][0], until=entries[19][0]) == entries[10:20]


async def test_segments_then_stream_in_any_range(
    redis: Any, keys: Keys, store: SegmentStore, reader: LogReader
) -> None:
    entries = await _archived(redis, keys, store, 400, 249, 60)
    assert await read_log(reader, size=33) == entries
    assert await read_log(reader, size=1000) == entries
    ranges = [(None, 0), (None, 59), (0, 60), (59, 60), (61, 130), (100, 300), (249, 250),
              (250, 399), (30, None), (300, None), (398, None), (399, None)]
    for low, high in ranges:
        after = None if low is None else entries[low][0]
        until = None if high is None else entries[high][0]
        start = 0 if low is None else low + 1
        stop = len(entries) if high is None else high + 1
        assert await read_log(reader, after=after, until=until, size=50) == entries[start:stop]


async def test_until_none_is_the_end_when_the_call_starts(
    redis: Any, keys: Keys, store: SegmentStore, reader: LogReader
) -> None:
    entries = await _archived(redis, keys, store, 50, 19, 10)
    chunks = reader.chunks(PARTITION, None, None, 10)
    first = await anext(chunks)
    await append(redis, keys, 5, start=50)
    rest = [entry async for chunk in chunks for entry in chunk]
    assert first + rest == entries


async def test_fully_archived_partition(
    redis: Any, keys: Keys, store: SegmentStore, reader: LogReader
) -> None:
    entries = await _archived(redis, keys, store, 30, 29, 8)
    assert await read_log(reader, size=5) == entries
    await redis.delete(keys.stream(PARTITION))  # even with the stream gone
    assert await read_log(reader, size=5) == entries


async def test_corrupt_segment_raises_naming_it(
    redis: Any, keys: Keys, store: SegmentStore, reader: LogReader, archive_root: Path
) -> None:
    await _archived(redis, keys, store, 100, 79, 20)
    victim = (await store.segments(PARTITION))[1]
    path = archive_root / victim.name
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArchiveError) as caught:
        await read_log(reader)
    assert victim.name in str(caught.value)
    assert f"partition {PARTITION}" in str(caught.value)


@pytest.mark.parametrize("which, named", [(0, 0), (1, 1), (3, 2)])
async def test_missing_segment_raises(
    redis: Any, keys: Keys, store: SegmentStore, reader: LogReader, which: int, named: int
) -> None:
    """First, middle or last segment deleted: the reader never skips its entries and
    names where the hole starts or ends."""
    await _archived(redis, keys, store, 100, 79, 20)
    segments = await store.segments(PARTITION)
    await store.storage.delete(segments[which].name)
    with pytest.raises(ArchiveError, match=r"missing|no segment") as caught:
        await read_log(reader)
    message = str(caught.value)
    assert f"partition {PARTITION}" in message
    assert segments[named].last in message


async def test_segment_vanishing_after_listing_raises_naming_it(
    redis: Any, keys: Keys, store: SegmentStore, reader: LogReader
) -> None:
    await _archived(redis, keys, store, 60, 59, 20)
    chunks = reader.chunks(PARTITION, None, None, 20)
    await anext(chunks)
    victim = (await store.segments(PARTITION))[1]
    await store.storage.delete(victim.name)
    with pytest.raises(ArchiveError, match="missing") as caught:
        await anext(chunks)
    assert victim.name in str(caught.value)


class CountingStore(SegmentStore):
    """Counts listings: a reader that lists more than once saw a trim under it."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self.listings = 0

    async def segments(self, partition: int) -> list[Segment]:
        self.listings += 1
        return await super().segments(partition)


async def test_reader_is_exact_while_an_archiver_trims(
    redis: Any, keys: Keys, store: SegmentStore, local_storage: Storage
) -> None:
    entries = await append(redis, keys, 2000)
    archiver = Archiver(redis, keys, store)
    done = asyncio.Event()

    async def archive_loop() -> None:
        for upto in range(37, len(entries), 53):
            await archiver.archive(PARTITION, entries[upto][0], segment_entries=29)
            await asyncio.sleep(0)
        await archiver.archive(PARTITION, entries[-1][0], segment_entries=29)
        done.set()

    async def read(size: int) -> tuple[list[tuple[str, bytes | None]], int]:
        counting = CountingStore(local_storage)
        out: list[tuple[str, bytes | None]] = []
        async for chunk in LogReader(redis, keys, counting).chunks(PARTITION, None, None, size):
            out.extend(chunk)
            await asyncio.sleep(0.001)
        return out, counting.listings

    results = await asyncio.gather(archive_loop(), read(17), read(40), read(101), read(3))
    relisted = 0
    for out, listings in results[1:]:
        assert out == entries
        relisted += listings > 1
    assert done.is_set()
    assert relisted, "no reader met a trim: the test did not race"
    assert await read_log(LogReader(redis, keys, store)) == entries
