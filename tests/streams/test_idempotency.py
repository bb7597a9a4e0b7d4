"""Idempotency records in time buckets, and the plain-XADD path of small groups."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ResponseError

from herald.streams import idempotency
from herald.streams.events import NotificationCreated
from herald.streams.idempotency import IdempotencyRecords, payload_digest
from herald.streams.producer import PLAIN_MAX, Producer
from herald.streams.settings import Settings
from tests.conftest import log_entries


def _created(producer: Producer, user: str, key: str | None, title: str = "t") -> Any:
    return producer.envelope(user, NotificationCreated(title=title), idempotency_key=key)


@pytest.mark.parametrize("skew_windows", [-1, 1])
async def test_a_caller_clock_one_window_off_still_finds_the_record(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, skew_windows: int
) -> None:
    producer = Producer(redis, settings)
    first = await producer.publish(_created(producer, "ann", "order-1"))
    real = idempotency.now_ms
    span = producer.records.span_ms
    monkeypatch.setattr(idempotency, "now_ms", lambda: real() + skew_windows * span)
    again = await producer.publish(_created(producer, "ann", "order-1"))
    assert again.duplicate and (again.id, again.position) == (first.id, first.position)
    assert await redis.xlen(producer.keys.stream(first.partition)) == 1


@pytest.mark.parametrize("skew_windows", [-5, 3])
async def test_a_clock_far_off_is_corrected_by_the_servers_bucket(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, skew_windows: int
) -> None:
    producer = Producer(redis, settings)
    real, span = idempotency.now_ms, producer.records.span_ms
    monkeypatch.setattr(idempotency, "now_ms", lambda: real() + skew_windows * span)
    first = await producer.publish(_created(producer, "bo", "k"))
    assert not first.duplicate
    monkeypatch.setattr(idempotency, "now_ms", real)
    again = await producer.publish(_created(producer, "bo", "k"))
    assert again.duplicate and again.id == first.id
    assert await redis.xlen(producer.keys.stream(first.partition)) == 1


def test_server_bucket_reads_only_its_own_error() -> None:
    assert idempotency.server_bucket(ResponseError("BUCKET 20419 script: ab, on x")) == 20419
    assert idempotency.server_bucket(ResponseError("ERR something")) is None
    assert idempotency.server_bucket(ValueError("BUCKET 1")) is None


async def test_records_live_in_one_expiring_hash_per_bucket(
    redis: Any, settings: Settings
) -> None:
    producer = Producer(redis, settings)
    envs = [_created(producer, f"u{i}", f"k{i}") for i in range(20)]
    appended = await producer.publish_many(envs)
    found = await producer.records.found(redis, appended[0].partition,
                                         ["k0", "k1", "never-used"])
    mine = [a for a in appended if a.partition == appended[0].partition]
    first_env = envs[0]
    assert found[2] is False and found[0] is True
    keys, _bucket = producer.records.script_keys(appended[0].partition)
    ttl_ms = await redis.pttl(keys[2])
    assert 0 < ttl_ms <= 2 * producer.records.span_ms  # bounded: gone after two windows
    stored = await redis.hget(keys[2], "k0")
    # "id position digest": the digest of what the first append said (a conflict check).
    assert stored.decode() == f"{mine[0].id} {mine[0].position} {payload_digest(first_env)}"


async def test_small_unkeyed_groups_use_plain_xadds_in_order(
    redis: Any, settings: Settings
) -> None:
    producer = Producer(redis, settings)
    # One user per partition-sized group: groups of 1..PLAIN_MAX+2 events, mixed with keys.
    users = [f"user-{i}" for i in range(40)]
    envs = []
    for n, user in enumerate(users):
        for j in range(n % (PLAIN_MAX + 3)):
            envs.append(_created(producer, user, f"{user}-{j}" if n % 5 == 0 else None,
                                 title=f"{user} {j}"))
    results = await producer.publish_many(envs)
    assert [r.id for r in results] == [e.id for e in envs]
    for p in {producer.partition(u) for u in users}:
        rows = await redis.xrange(producer.keys.stream(p))
        stored = await log_entries(redis, settings, p)
        assert stored == [e for e in envs if producer.partition(e.user) == p]
        assert [r.position for r in results if r.partition == p] == [
            pos.decode() for pos, _ in rows]


def test_records_need_a_positive_span(settings: Settings) -> None:
    records = IdempotencyRecords.from_settings(settings.replace(dedupe_window_s=0.0001))
    assert records.span_ms == 1
    keys, bucket = records.script_keys(3, at_ms=10_000)
    assert bucket == 10_000 and len(keys) == 4 and keys[2].endswith(":1:10000")
