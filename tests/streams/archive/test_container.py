"""The container format: round trip, and every defect raises ArchiveError naming the file."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.streams.archive import container
from herald.streams.archive.container import MAGIC, pack_container, unpack_container
from herald.streams.archive.errors import ArchiveError
from herald.streams.codec import pack_records

NAME = "segments/p0001/some.seg"
RECORDS: list[Any] = [["1-0", b"\x00\xffraw"], ["1-1", None], {"k": [1, 2.5, "x"]}]


def _packed() -> bytes:
    return pack_container("segment", {"partition": 1}, RECORDS)


def _rebuild(header: dict[str, Any], body: bytes) -> bytes:
    head = pack_records([header])
    return MAGIC + struct.pack(">I", len(head)) + head + body


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    got = unpack_container(data, kind="segment", name=NAME)
    return dict(got.header), data[start + length :]


def test_round_trip_keeps_records_and_header() -> None:
    got = unpack_container(_packed(), kind="segment", name=NAME)
    assert got.records == RECORDS
    assert got.header["partition"] == 1
    assert got.header["format"] == container.FORMAT
    assert got.header["kind"] == "segment"
    assert got.header["count"] == len(RECORDS)
    assert got.header["herald"] == container.herald_version() != ""


def test_empty_container_round_trips() -> None:
    data = pack_container("snapshot", {}, [])
    assert unpack_container(data, kind="snapshot", name=NAME).records == []


def test_reserved_header_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        pack_container("segment", {"count": 3}, [])


def _defects() -> dict[str, tuple[bytes, str]]:
    data = _packed()
    header, body = _split(data)
    flipped = bytearray(data)
    flipped[-3] ^= 0x40
    return {
        "flipped body byte": (bytes(flipped), "sha256"),
        "truncated body": (data[:-5], "truncated"),
        "truncated header": (data[:20], "truncated"),
        "truncated prefix": (data[:6], "truncated"),
        "empty": (b"", "truncated"),
        "wrong magic": (b"HERALD\x00X" + data[8:], "magic"),
        "trailing bytes": (data + b"\x00", "corrupt"),
        "newer format": (_rebuild({**header, "format": container.FORMAT + 1}, body),
                         "newer Herald"),
        "count mismatch": (_rebuild({**header, "count": len(RECORDS) + 1}, body), "records"),
        "garbled header": (MAGIC + struct.pack(">I", 3) + b"\xc1\xc1\xc1" + body, "header"),
        "not zstd": (_rebuild({**header, "body_bytes": 4,
                               "sha256": container.hashlib.sha256(b"abcd").hexdigest()},
                              b"abcd"), "decode"),
    }


@pytest.mark.parametrize("defect", sorted(_defects()))
def test_every_defect_raises_archive_error_naming_the_file(defect: str) -> None:
    data, reason = _defects()[defect]
    with pytest.raises(ArchiveError, match=reason) as caught:
        unpack_container(data, kind="segment", name=NAME)
    assert NAME in str(caught.value)
    assert caught.value.name == NAME


def test_newer_format_names_both_format_numbers() -> None:
    data, _ = _defects()["newer format"]
    with pytest.raises(ArchiveError) as caught:
        unpack_container(data, kind="segment", name=NAME)
    message = str(caught.value)
    assert f"format {container.FORMAT + 1}" in message
    assert f"format {container.FORMAT}" in message


def test_wrong_kind_raises_archive_error_naming_the_file() -> None:
    with pytest.raises(ArchiveError, match=r"'segment'.*'snapshot'") as caught:
        unpack_container(_packed(), kind="snapshot", name=NAME)
    assert NAME in str(caught.value)


def test_every_single_byte_flip_is_detected() -> None:
    data = _packed()
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x01
        try:
            got = unpack_container(bytes(damaged), kind="segment", name=NAME)
        except ArchiveError:
            continue
        # A flip inside a header value that is not checked (the Herald version or the
        # caller's own field) still reads the same records.
        assert got.records == RECORDS, i


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@given(st.lists(values, max_size=30), st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in container.RESERVED),
    values, max_size=4))
def test_arbitrary_records_round_trip(records: list[Any], header: dict[str, Any]) -> None:
    got = unpack_container(pack_container("segment", header, records), kind="segment",
                           name=NAME)
    assert got.records == records
    assert {k: got.header[k] for k in header} == header
