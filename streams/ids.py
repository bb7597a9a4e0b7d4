"""Event and notification ids: sortable, unique, and carrying their partition.

An id is 26 Crockford base32 characters (a ULID): 48 bits of milliseconds, then
80 bits of which the low 12 bits hold the partition number. So ids sort by time,
and ``partition_of(id)`` finds the partition stream of a notification from its id
alone — ``GET /v1/notifications/{id}`` needs no global index.
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
PARTITION_BITS = 12
MAX_PARTITIONS = 1 << PARTITION_BITS


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return int(time.time() * 1000)


def new_id(partition: int, at_ms: int | None = None) -> str:
    """A fresh id for an event of ``partition``, stamped ``at_ms`` (default now)."""
    ms = now_ms() if at_ms is None else at_ms
    return compose(ms, int.from_bytes(os.urandom(9), "big") >> 4, partition)  # 68 random bits


def compose(ms: int, random: int, partition: int) -> str:
    """The id of ``ms`` (48 bits), ``random`` (68 bits) and ``partition`` (12 bits):
    the 128-bit value ``ms << 80 | random << 12 | partition`` in Crockford base32,
    most significant first (PROTOCOL.md, "Event ids"). ValueError when a part does
    not fit its bits."""
    if not (0 <= ms < 1 << 48 and 0 <= random < 1 << 68 and 0 <= partition < MAX_PARTITIONS):
        raise ValueError(f"id parts out of range: ms={ms}, partition={partition}")
    value = (ms << 80) | (random << PARTITION_BITS) | partition
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_id(text: str) -> bool:
    """True when ``text`` has the shape of a Herald id."""
    return bool(_ID.match(text))


def partition_of(event_id: str) -> int:
    """The partition encoded in an id; raises ValueError for a malformed one."""
    if not is_id(event_id):
        raise ValueError(f"not a Herald id: {event_id!r}")
    # The low 12 bits live in the last three characters (15 bits).
    tail = (_DECODE[event_id[-3]] << 10) | (_DECODE[event_id[-2]] << 5) | _DECODE[event_id[-1]]
    return tail & (MAX_PARTITIONS - 1)


def time_of(event_id: str) -> int:
    """Milliseconds since the epoch encoded in an id."""
    value = 0
    for char in event_id[:10]:
        value = (value << 5) | _DECODE[char]
    return value
