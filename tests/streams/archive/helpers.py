"""Helpers of the archive tests: a partition log to archive, and what it holds now."""

from __future__ import annotations

from typing import Any

from herald.streams.archive.reader import LogReader
from herald.streams.archive.segments import Entry, SegmentStore
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import text
from herald.streams.keys import Keys

PARTITION = 3


def payload(i: int) -> bytes:
    """Distinct entry bytes of varied length, including non-UTF-8 bytes."""
    return b"entry-%d:" % i + bytes((i * 7 + k) % 256 for k in range(i % 13))


async def append(redis: Any, keys: Keys, count: int, partition: int = PARTITION,
                 start: int = 0) -> list[Entry]:
    """Append ``count`` entries (auto ids); their (position, raw) in log order."""
    out: list[Entry] = []
    stream = keys.stream(partition)
    for low in range(start, start + count, 500):
        async with redis.pipeline(transaction=False) as pipe:
            chunk = [payload(i) for i in range(low, min(low + 500, start + count))]
            for raw in chunk:
                pipe.xadd(stream, {ENTRY_FIELD: raw})
            ids = await pipe.execute()
        out.extend((text(i), raw) for i, raw in zip(ids, chunk, strict=True))
    return out


async def stream_entries(redis: Any, keys: Keys, partition: int = PARTITION) -> list[Entry]:
    rows = await redis.xrange(keys.stream(partition))
    return [(text(pos), fields.get(ENTRY_FIELD)) for pos, fields in rows]


async def segment_entries(store: SegmentStore, partition: int = PARTITION) -> list[Entry]:
    out: list[Entry] = []
    for segment in await store.segments(partition):
        out.extend(await store.read(segment))
    return out


async def union(redis: Any, keys: Keys, store: SegmentStore,
                partition: int = PARTITION) -> list[Entry]:
    """Segments' entries then the stream's, as stored (duplicates kept: they are bugs)."""
    return await segment_entries(store, partition) + await stream_entries(redis, keys, partition)


async def read_log(reader: LogReader, partition: int = PARTITION, after: str | None = None,
                   until: str | None = None, size: int = 500) -> list[Entry]:
    out: list[Entry] = []
    async for chunk in reader.chunks(partition, after, until, size):
        assert 0 < len(chunk) <= size
        out.extend(chunk)
    return out
