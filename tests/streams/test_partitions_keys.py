"""Partitions are stable and spread; every partition key lies in one cluster slot."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest
from redis.crc import key_slot

from herald.streams.errors import PartitionMismatchError
from herald.streams.keys import Keys
from herald.streams.partitions import ensure_partition_count, partition_for


def test_mapping_is_stable_across_releases() -> None:
    # Pinned values: a change here moves users to other streams (breaks order).
    assert [partition_for(u, 64) for u in ("alice", "bob", "用户-1", "u42")] == [9, 18, 14, 31]
    assert partition_for("alice", 4096) == 2697


def test_users_spread_evenly() -> None:
    counts = Counter(partition_for(f"user-{i}", 64) for i in range(64_000))
    assert len(counts) == 64
    assert min(counts.values()) > 800 and max(counts.values()) < 1200


def _partition_key_builders() -> list[tuple[str, list[str]]]:
    out = []
    for name, fn in inspect.getmembers(Keys, inspect.isfunction):
        params = list(inspect.signature(fn).parameters)
        if name.startswith("_") or "partition" not in params:
            continue
        out.append((name, params[1:]))
    return out


@pytest.mark.parametrize("partition", [0, 7, 63, 4095])
def test_every_key_of_a_partition_is_in_one_slot(partition: int) -> None:
    keys = Keys("herald")
    samples = {"user": "用户:42", "notification_id": "01HF7YAT00APF0XHPYJ0P8BC1Z",
               "key": "order:{9}", "group": "projector", "ns": "r2", "channel": "sms",
               "cancel_key": "c{1}", "digest_key": "daily", "span_ms": 86_400_000,
               "bucket": 20_000, "tenant": "acme", "topic": "news:{x}",
               "template_id": "order.shipped", "critical": True,
               "workflow_key": "order.unpaid", "run_id": "01HF7YAT00APF0XHPYJ0P8BC1Z"}
    slots = set()
    builders = _partition_key_builders()
    assert len(builders) >= 10
    for name, params in builders:
        args = [partition if p == "partition" else samples[p] for p in params]
        slots.add((name, key_slot(getattr(keys, name)(*args).encode())))
    assert len({slot for _, slot in slots}) == 1, slots


async def test_partition_count_mismatch_refuses(redis, settings) -> None:  # type: ignore[no-untyped-def]
    keys = Keys(settings.prefix)
    await ensure_partition_count(redis, keys, 8)
    await ensure_partition_count(redis, keys, 8)
    with pytest.raises(PartitionMismatchError, match="HERALD_PARTITIONS=16"):
        await ensure_partition_count(redis, keys, 16)
