"""Segment files: names in log order, verified reads and writes, no overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from herald.streams.archive.container import pack_container
from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.segments import Segment, SegmentStore, successor
from herald.streams.archive.storage import Storage
from herald.streams.positions import MAX_SEQ

ENTRIES = [("1700000000000-0", b"a"), ("1700000000000-1", None), ("1700000000005-0", b"\xff")]
MORE = [("1700000000009-0", b"b"), ("1700000000010-0", b"c")]


def test_successor_is_the_next_position() -> None:
    assert successor("5-0") == "5-1"
    assert successor(f"5-{MAX_SEQ}") == "6-0"


async def test_write_names_and_reads_back(storage: Storage) -> None:
    store = SegmentStore(storage)
    segment = await store.write(1, ENTRIES)
    assert segment == Segment(1, ENTRIES[0][0], ENTRIES[-1][0], segment.name)
    assert segment.name == ("segments/p0001/001700000000000-00000000000000000000_"
                            "001700000000005-00000000000000000000.seg")
    assert await store.read(segment) == ENTRIES
    assert await store.segments(1) == [segment]
    assert await store.segments(2) == []
    assert await store.archived_to(1) == ENTRIES[-1][0]
    assert await store.archived_to(2) is None
    second = await store.write(1, MORE)
    assert await store.segments(1) == [segment, second]
    content = await store.load(second)
    assert content.prev == ENTRIES[-1][0]
    assert (await store.load(segment)).prev is None


async def test_names_sort_in_log_order_not_string_order(store: SegmentStore) -> None:
    # "9-0" < "10-0" in the log but not as plain strings: the padded names sort right.
    small = await store.write(0, [("9-0", b"x")])
    big = await store.write(0, [("10-0", b"y")])
    names = await store.storage.list("segments/")
    assert names == [small.name, big.name]


async def test_overlapping_or_unordered_writes_are_refused(store: SegmentStore) -> None:
    await store.write(1, ENTRIES)
    with pytest.raises(ArchiveError, match="does not start after") as caught:
        await store.write(1, [ENTRIES[-1]])
    assert "partition 1" in str(caught.value)
    with pytest.raises(ValueError, match="log order"):
        await store.write(1, list(reversed(MORE)))
    with pytest.raises(ValueError, match="at least one"):
        await store.write(1, [])
    assert len(await store.segments(1)) == 1


async def test_foreign_and_staging_names_are_ignored(store: SegmentStore,
                                                     archive_root: Path) -> None:
    segment = await store.write(1, ENTRIES)
    folder = archive_root / "segments" / "p0001"
    (folder / f"{Path(segment.name).name}#3").write_bytes(b"half a put")
    (folder / "README").write_text("not a segment")
    (folder / "001700000000009-00000000000000000000_x.seg").write_bytes(b"")
    assert await store.segments(1) == [segment]


async def test_overlapping_segments_on_disk_fail_loudly(store: SegmentStore) -> None:
    segment = await store.write(1, ENTRIES)
    # a second archiver's segment that overlaps the first
    other = Segment.named(1, ENTRIES[1][0], MORE[0][0])
    await store.storage.put(other.name, b"whatever")
    with pytest.raises(ArchiveError, match="overlaps") as caught:
        await store.segments(1)
    assert segment.name in str(caught.value)
    assert other.name in str(caught.value)


async def test_missing_segment_raises_naming_it(store: SegmentStore) -> None:
    segment = await store.write(1, ENTRIES)
    await store.storage.delete(segment.name)
    with pytest.raises(ArchiveError, match="missing") as caught:
        await store.read(segment)
    assert segment.name in str(caught.value)
    assert "partition 1" in str(caught.value)


async def test_corrupt_segment_raises_naming_it(store: SegmentStore, archive_root: Path) -> None:
    segment = await store.write(1, ENTRIES)
    path = archive_root / segment.name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="sha256") as caught:
        await store.read(segment)
    assert segment.name in str(caught.value)
    assert "partition 1" in str(caught.value)


@pytest.mark.parametrize("header, records, reason", [
    ({"partition": 2, "first": ENTRIES[0][0], "last": ENTRIES[-1][0]}, ENTRIES, "partition"),
    ({"partition": 1, "first": "1-0", "last": ENTRIES[-1][0]}, ENTRIES, "first"),
    ({"partition": 1, "first": ENTRIES[0][0], "last": ENTRIES[-1][0]}, ENTRIES[:2], "last"),
    ({"partition": 1, "first": ENTRIES[0][0], "last": ENTRIES[-1][0]},
     [ENTRIES[0], ENTRIES[2], ENTRIES[1], ENTRIES[2]], "log order"),
    ({"partition": 1, "first": ENTRIES[0][0], "last": ENTRIES[-1][0]},
     [ENTRIES[0], ["x", b""], ENTRIES[2]], "record"),
])
async def test_segment_not_matching_its_name_is_refused(
    store: SegmentStore, header: dict[str, Any], records: list[Any], reason: str
) -> None:
    segment = Segment.named(1, ENTRIES[0][0], ENTRIES[-1][0])
    await store.storage.put(segment.name, pack_container(
        "segment", {**header, "prev": None}, [list(r) for r in records]))
    with pytest.raises(ArchiveError, match=reason) as caught:
        await store.read(segment)
    assert segment.name in str(caught.value)


async def test_snapshot_file_under_a_segment_name_is_refused(store: SegmentStore) -> None:
    segment = Segment.named(1, ENTRIES[0][0], ENTRIES[-1][0])
    await store.storage.put(segment.name, pack_container("snapshot", {}, []))
    with pytest.raises(ArchiveError, match="snapshot"):
        await store.read(segment)


async def test_write_that_does_not_read_back_is_deleted_and_raises(
    store: SegmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_get = store.storage.get

    async def damaged(name: str) -> bytes:
        return (await real_get(name))[:-1]

    monkeypatch.setattr(store.storage, "get", damaged)
    with pytest.raises(ArchiveError, match="verify after write"):
        await store.write(1, ENTRIES)
    monkeypatch.undo()
    assert await store.segments(1) == []
