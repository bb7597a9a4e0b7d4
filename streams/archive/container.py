"""The container: one self-describing, versioned, checksummed, compressed file format,
shared by archive segments and projection snapshots.

Layout: the 8-byte magic ``HERALD\\0C``, a 4-byte big-endian header length, the header
(one record of :func:`herald.streams.codec.pack_records`: a map with ``format``,
``kind``, ``count``, ``sha256`` and ``body_bytes`` of the body, the ``herald`` version
that wrote it, and the caller's own fields), then the body: the records packed with
``pack_records`` and compressed with zstandard.

:func:`unpack_container` returns every record or raises :class:`ArchiveError` naming
the file and the reason (wrong magic, truncated, a format newer than this code reads,
another kind, checksum or length mismatch, undecodable body, wrong record count): it
never returns part of a file and never lets another exception through.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import zstandard

from herald.streams.archive.errors import ArchiveError
from herald.streams.codec import pack_records, unpack_records
from herald.streams.errors import CodecError

MAGIC = b"HERALD\x00C"
FORMAT = 1  # the highest format this code writes and reads
LEVEL = 3  # zstandard level: fast, and most of the ratio of the higher ones
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size
RESERVED = frozenset({"format", "kind", "count", "sha256", "body_bytes", "herald"})


@dataclass(frozen=True, slots=True)
class Container:
    """A verified container: its header (reserved and caller fields) and its records."""

    header: dict[str, Any]
    records: list[Any]


@functools.cache
def herald_version() -> str:
    """The installed Herald's version, ``"unknown"`` when it is not installed."""
    try:
        return importlib.metadata.version("herald")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def pack_container(kind: str, header: Mapping[str, Any], records: Iterable[Any]) -> bytes:
    """The container file of ``records``; ``header`` adds fields to the reserved ones.

    Raises ValueError when ``header`` uses a reserved name, CodecError when a record or
    header value cannot be packed.
    """
    clash = RESERVED.intersection(header)
    if clash:
        raise ValueError(f"container header fields {sorted(clash)} are reserved")
    items = list(records)
    body = zstandard.ZstdCompressor(level=LEVEL).compress(pack_records(items))
    head = pack_records([{
        "format": FORMAT, "kind": kind, "count": len(items),
        "sha256": hashlib.sha256(body).hexdigest(), "body_bytes": len(body),
        "herald": herald_version(), **header,
    }])
    return MAGIC + _LENGTH.pack(len(head)) + head + body


def unpack_container(data: bytes, *, kind: str, name: str) -> Container:
    """The header and records of a container of ``kind``; ArchiveError naming ``name``
    on any defect (see the module docstring)."""

    def fail(reason: str) -> ArchiveError:
        return ArchiveError(name, reason)

    if len(data) < _PREFIX:
        if not MAGIC.startswith(data[: len(MAGIC)]):
            raise fail("not a Herald container (wrong magic)")
        raise fail(f"truncated: {len(data)} bytes, shorter than the container prefix")
    if data[: len(MAGIC)] != MAGIC:
        raise fail("not a Herald container (wrong magic)")
    (head_len,) = _LENGTH.unpack_from(data, len(MAGIC))
    if _PREFIX + head_len > len(data):
        raise fail(f"truncated: header of {head_len} bytes does not fit in {len(data)} bytes")
    header = _header(data[_PREFIX : _PREFIX + head_len], fail)
    written = header.get("format")
    if type(written) is not int or written < 1:
        raise fail(f"unknown container format {written!r}")
    if written > FORMAT:
        raise fail(f"written by a newer Herald ({header.get('herald', 'unknown')}): "
                   f"container format {written}, this Herald reads format {FORMAT} at most")
    if header.get("kind") != kind:
        raise fail(f"holds a {header.get('kind')!r}, expected a {kind!r}")
    body = data[_PREFIX + head_len :]
    if header.get("body_bytes") != len(body):
        state = "truncated" if len(body) < _as_int(header.get("body_bytes")) else "corrupt"
        raise fail(f"{state}: body is {len(body)} bytes, header says {header.get('body_bytes')}")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise fail("corrupt: the body's sha256 does not match the header")
    try:
        packed = zstandard.ZstdDecompressor().decompress(body)
        records = list(unpack_records(packed))
    except (zstandard.ZstdError, CodecError) as exc:
        raise fail(f"corrupt: cannot decode the body ({exc})") from exc
    if len(records) != header.get("count"):
        raise fail(f"corrupt: {len(records)} records, header says {header.get('count')}")
    return Container(header=header, records=records)


def _header(raw: bytes, fail: Callable[[str], ArchiveError]) -> dict[str, Any]:
    try:
        items = list(unpack_records(raw))
    except CodecError as exc:
        raise fail(f"corrupt header ({exc})") from exc
    if len(items) != 1 or not isinstance(items[0], dict):
        raise fail("corrupt header (not one map)")
    return items[0]


def _as_int(value: Any) -> int:
    return value if type(value) is int else -1
