"""Stream positions (entry ids ``"ms-seq"``): parsing, ordering, and the padded form.

The padded form zero-pads ``ms`` to 15 digits and ``seq`` to 20 digits
(``"000001700000000000-00000000000000000007"``), so plain string comparison — in
Python, in Lua and in a Redis lex-ordered sorted set — is exactly the stream's
order for every valid id (``seq`` is an unsigned 64-bit integer, at most 20 digits;
15 digits of milliseconds last until the year 33658). No float score is involved,
so no precision is lost.
"""

from __future__ import annotations

import re

from herald.streams.errors import ValidationError

_POSITION = re.compile(r"^(\d{1,15})-(\d{1,20})$")
MS_WIDTH = 15
SEQ_WIDTH = 20
MAX_SEQ = (1 << 64) - 1


def parse(position: str) -> tuple[int, int]:
    """``"ms-seq"`` → ``(ms, seq)``; raises ValueError for anything else."""
    match = _POSITION.match(position)
    if match is None or int(match.group(2)) > MAX_SEQ:
        raise ValueError(f"not a stream position: {position!r}")
    return int(match.group(1)), int(match.group(2))


def is_position(text: object) -> bool:
    """True when ``text`` is a well-formed stream position."""
    if not isinstance(text, str):
        return False
    try:
        parse(text)
    except ValueError:
        return False
    return True


def check(text: object, field: str) -> str:
    """The position, or ValidationError naming ``field`` (API inputs)."""
    if not is_position(text):
        raise ValidationError(field, "must be a stream position like 1700000000000-0")
    return str(text)


def padded(position: str) -> str:
    """The fixed-width form whose string order is the stream order (trusted input)."""
    ms, _, seq = position.partition("-")
    return ms.zfill(MS_WIDTH) + "-" + seq.zfill(SEQ_WIDTH)


def unpadded(text: str) -> str:
    """Inverse of :func:`padded`."""
    ms, _, seq = text.partition("-")
    return f"{int(ms)}-{int(seq)}"
