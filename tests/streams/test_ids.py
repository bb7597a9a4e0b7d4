"""Ids: sortable by time and carrying their partition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from herald.streams.ids import MAX_PARTITIONS, is_id, new_id, partition_of, time_of


@given(st.integers(0, MAX_PARTITIONS - 1), st.integers(0, 2**48 - 1))
def test_id_carries_partition_and_time(partition: int, ms: int) -> None:
    event_id = new_id(partition, ms)
    assert is_id(event_id)
    assert partition_of(event_id) == partition
    assert time_of(event_id) == ms


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_id(5, 1_700_000_000_000 + i) for i in range(200)]
    assert ids == sorted(ids)
    assert len(set(new_id(5, 1) for _ in range(1000))) == 1000


def test_malformed_ids_are_rejected() -> None:
    assert not is_id("not-an-id")
    assert not is_id("01HF7YAT00APF0XHPYJ0P8BC1I")  # I is not Crockford base32
