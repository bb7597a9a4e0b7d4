"""PROTOCOL.md stays true to the code: its partition table, every event type and
field, every reason word a consumer writes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from herald.streams.codec import ENVELOPE_KEYS
from herald.streams.events import REGISTRY
from herald.streams.partitions import partition_for

DOC = (Path(__file__).resolve().parents[2] / "PROTOCOL.md").read_text(encoding="utf-8")


def test_the_partition_table() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| `([0-9a-f]+)` \| `([0-9a-f]{16})` \| (\d+) \| (\d+) \|$",
                      DOC, re.M)
    assert len(rows) >= 4
    for user, utf8, _digest, of64, of8 in rows:
        assert user.encode().hex() == utf8
        assert (partition_for(user, 64), partition_for(user, 8)) == (int(of64), int(of8))


def test_every_type_and_field_is_documented() -> None:
    for (type_, version), cls in REGISTRY.items():
        assert f"**`{type_}`**" in DOC, type_
        assert version == 1  # the document says every type is at version 1
        for field in dataclasses.fields(cls):
            assert f"| `{field.name}` |" in DOC, (type_, field.name)
    for key in ENVELOPE_KEYS:
        assert f"| `{key}` |" in DOC, key


def test_every_reason_word_is_documented() -> None:
    for word in ("malformed", "oversized", "unknown_version", "unknown_type", "invalid",
                 "wrong_partition", "duplicate"):
        assert f"`{word}`" in DOC, word
