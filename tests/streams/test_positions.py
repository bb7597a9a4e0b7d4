"""Padded positions sort exactly like stream ids (no float precision loss)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.streams import positions
from herald.streams.errors import ValidationError

ids = st.tuples(st.integers(0, 10**15 - 1), st.integers(0, (1 << 64) - 1))


@given(ids, ids)
def test_padded_order_is_stream_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    pa, pb = positions.padded(f"{a[0]}-{a[1]}"), positions.padded(f"{b[0]}-{b[1]}")
    assert (pa < pb) == (a < b)
    assert (pa == pb) == (a == b)
    assert positions.unpadded(pa) == f"{a[0]}-{a[1]}"
    assert len(pa) == 36


def test_seq_beyond_float_precision_still_orders() -> None:
    # 2**53 + 1 is not representable as a double; as a score it would collide.
    a, b = f"1700000000000-{2**53}", f"1700000000000-{2**53 + 1}"
    assert float(2**53) == float(2**53 + 1)
    assert positions.padded(a) < positions.padded(b)


@pytest.mark.parametrize("bad", ["", "1", "1-", "-1", "a-1", "1-2-3", f"1-{1 << 64}", "1 -2"])
def test_malformed_positions_are_rejected(bad: str) -> None:
    assert not positions.is_position(bad)
    with pytest.raises(ValidationError, match="cursor"):
        positions.check(bad, "cursor")
