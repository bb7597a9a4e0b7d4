"""Repair a torn transaction at the end of the append-only file before a start.

A power loss can leave the last append-only file ending inside a ``MULTI`` block
(Herald's scripts are written to it as ``MULTI … EXEC``; a torn write cuts the block
short). Valkey 8.1 with ``aof-load-truncated yes`` then discards the unfinished
block *in memory*, but truncates the *file* only to its last complete command — still
inside the block. Its next writes are appended after that dangling ``MULTI``, so the
start after the next one loads the discarded commands again, wrapped into the
following ``EXEC``: entries that clients never saw reappear in a stream *behind*
its consumer groups, never delivered and never projected (the chaos suite's power
loss scenario found 26 such entries; tests/chaos). :func:`drop_torn_transaction`
removes the unfinished block (and any torn command after it) before the server
starts, so the file says what the server loads. The block was never acknowledged
with ``appendfsync always`` (its reply waits for the fsync of the whole block);
with ``everysec`` it lies in the documented loss window.

Servers Herald does not start are the operator's: ``aof-load-truncated no`` makes
such a server refuse to start, and ``valkey-check-aof --fix`` truncates before an
unfinished ``MULTI`` (README, Persistence).

Finding the block reads the file's last :data:`TAIL_BYTES` backwards for the last
``MULTI`` and checks that everything after it parses as commands without an ``EXEC``
(a value that merely contains the bytes of ``MULTI`` fails that check).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from herald.streams.log import get_logger

log = get_logger(__name__)
MULTI = b"*1\r\n$5\r\nMULTI\r\n"
EXEC = b"*1\r\n$4\r\nEXEC\r\n"
MANIFEST_SUFFIX = ".manifest"
TAIL_BYTES = 64 << 20  # what a start reads of the newest incremental file


@dataclass(frozen=True, slots=True)
class Parsed:
    """What parsing from an offset found: where the last complete command ends, the
    offset of an unfinished ``MULTI`` (None: none), and whether the bytes were
    commands at all."""

    complete_to: int
    open_multi: int | None
    valid: bool


def _command(data: bytes, at: int) -> tuple[int, bytes] | None:
    """The end offset and name of the command at ``at``; None when it is cut short.
    Raises ValueError when the bytes there are not a command."""
    if data[at:at + 1] != b"*":
        raise ValueError(f"no command at {at}")
    end = data.find(b"\r\n", at)
    if end < 0:
        return None
    count = int(data[at + 1:end])
    if count < 1:
        raise ValueError(f"empty command at {at}")
    pos, name = end + 2, b""
    for n in range(count):
        if pos >= len(data):
            return None
        if data[pos:pos + 1] != b"$":
            raise ValueError(f"no bulk string at {pos}")
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(data[pos + 1:end])
        start, pos = end + 2, end + 2 + size + 2
        if pos > len(data):
            return None
        if data[pos - 2:pos] != b"\r\n":
            raise ValueError(f"bulk string not terminated at {pos}")
        if n == 0:
            name = data[start:start + size].upper()
    return pos, name


def parse(data: bytes, start: int = 0) -> Parsed:
    """Parse commands from ``start`` (a command boundary) to the end."""
    at, open_multi = start, None
    try:
        while at < len(data):
            step = _command(data, at)
            if step is None:
                break  # a torn last command
            end, name = step
            if name == b"MULTI":
                open_multi = at
            elif name in (b"EXEC", b"DISCARD"):
                open_multi = None
            at = end
    except ValueError:
        return Parsed(at, open_multi, False)
    return Parsed(at, open_multi, True)


def torn_transaction(data: bytes, *, whole: bool = True) -> int | None:
    """The offset of an unfinished ``MULTI`` block at the end of ``data`` (None: the
    file ends outside any transaction). ``whole``: ``data`` is the file from its start
    (else its tail: a candidate must then be found in it)."""
    candidate = data.rfind(MULTI)
    if candidate < 0:
        return None  # no transaction anywhere (in the tail: none that could be open)
    while candidate >= 0:
        if candidate == 0 or data[candidate - 2:candidate] == b"\r\n":
            tail = parse(data, candidate)
            if tail.valid:
                return tail.open_multi
        candidate = data.rfind(MULTI, 0, candidate)
    if not whole:
        return None  # only values that look like MULTI in the tail: none is open
    parsed = parse(data)  # undecided from the end: read it all
    return parsed.open_multi if parsed.valid else None


def last_incr_file(data_dir: Path) -> Path | None:
    """The newest incremental file named in ``appendonlydir``'s manifest."""
    folder = data_dir / "appendonlydir"
    manifests = sorted(folder.glob(f"*{MANIFEST_SUFFIX}")) if folder.is_dir() else []
    newest: tuple[int, str] | None = None
    for manifest in manifests:
        for line in manifest.read_text(errors="replace").splitlines():
            fields = line.split()
            pairs = dict(zip(fields[0::2], fields[1::2], strict=False))
            if pairs.get("type") == "i" and "file" in pairs and pairs.get("seq", "").isdigit():
                seq = int(pairs["seq"])
                if newest is None or seq > newest[0]:
                    newest = (seq, pairs["file"])
    return folder / newest[1] if newest else None


def drop_torn_transaction(data_dir: Path) -> int:
    """Truncate the newest incremental file before an unfinished ``MULTI`` at its end;
    the bytes removed (0: nothing to do). Call only while no server runs on it.

    Reads only the last :data:`TAIL_BYTES` of the file: Herald's blocks are one script's
    writes (a batch of at most ``HERALD_MAX_BATCH`` events), far smaller."""
    path = last_incr_file(data_dir)
    if path is None or not path.is_file():
        return 0
    size = path.stat().st_size
    start = max(0, size - TAIL_BYTES)
    with path.open("rb") as f:
        f.seek(start)
        data = f.read()
    found = torn_transaction(data, whole=start == 0)
    if found is None:
        return 0
    offset = start + found
    with path.open("r+b") as f:
        f.truncate(offset)
        f.flush()
        os.fsync(f.fileno())
    removed = size - offset
    log.warning("aof_torn_transaction_removed", file=str(path), offset=offset,
                bytes=removed)
    return removed
