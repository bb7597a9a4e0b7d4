"""HERALD_PUBLISH_DURABILITY: a publish waits for copies (WAIT) or fsyncs (WAITAOF) in
the same round trip, and is refused — not acknowledged — when they do not come."""

from __future__ import annotations

from typing import Any

import pytest

from herald.streams.connection import connect_sync
from herald.streams.durability import FENCE_FIELD, fence
from herald.streams.errors import NotDurableError, SettingsError
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from herald.streams.producer import Producer, SyncProducer
from herald.streams.settings import Settings
from tests.conftest import log_entries


@pytest.mark.cluster
async def test_replica_durability_waits_for_a_copy(
        redis: Any, settings: Settings, deployment: str) -> None:
    """The cluster has a replica per primary: acknowledged. The standalone server has
    none: refused after the wait, though the entry is in the primary's log (a retry
    with the same idempotency key answers it, not a second entry)."""
    durable = settings.replace(publish_durability="replica", publish_wait_s=0.2)
    producer = Producer(redis, durable)
    env = producer.envelope("alice", NotificationCreated(title="t"), idempotency_key="k1")
    if deployment == "cluster":
        appended = await producer.publish(env)
        assert await log_entries(redis, settings, appended.partition) == [env]
        return
    with pytest.raises(NotDurableError, match="0 of 1 replica"):
        await producer.publish(env)
    p = producer.partition("alice")
    assert await log_entries(redis, settings, p) == [env]
    again = Producer(redis, settings)  # what a client does next: the same key again
    answer = await again.publish(again.envelope("alice", NotificationCreated(title="t"),
                                                idempotency_key="k1"))
    assert answer.duplicate and answer.id == env.id
    assert await log_entries(redis, settings, p) == [env]


@pytest.mark.cluster
async def test_fsync_durability_waits_for_the_append_only_files(
        redis: Any, settings: Settings, deployment: str) -> None:
    replicas = 1 if deployment == "cluster" else 0
    durable = settings.replace(publish_durability="fsync", publish_replicas=replicas)
    producer = Producer(redis, durable)
    envs = [producer.envelope(f"u{i}", NotificationCreated(title=f"n{i}")) for i in range(20)]
    appended = await producer.publish_many(envs)
    assert [a.id for a in appended] == [e.id for e in envs]
    sync = connect_sync(durable)
    try:
        again = SyncProducer(sync, durable).publish(
            producer.envelope("bob", NotificationCreated(title="sync")))
        assert not again.duplicate
    finally:
        sync.close()


def test_durability_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="HERALD_PUBLISH_REPLICAS"):
        Settings.from_env({"HERALD_PUBLISH_DURABILITY": "replica",
                           "HERALD_PUBLISH_REPLICAS": "0"})
    with pytest.raises(SettingsError, match="HERALD_PUBLISH_DURABILITY"):
        Settings.from_env({"HERALD_PUBLISH_DURABILITY": "quorum"})


async def test_the_api_answers_an_unconfirmed_publish_with_503(settings: Settings) -> None:
    from tests.api.conftest import SECRET, SERVICE_KEY, running_api

    durable = settings.replace(publish_durability="replica", publish_wait_s=0.1,
                               api_keys=(SERVICE_KEY,), token_secret=SECRET)
    async with running_api(durable) as api:
        answer = await api.call("POST", "/v1/notifications",
                                json={"user": "alice", "title": "t"})
    assert answer.status == 503 and answer.content_type == "application/problem+json"
    assert "same idempotency key" in answer.body["detail"]
    assert answer.headers["Retry-After"] == "1"


@pytest.mark.cluster
async def test_fence_waits_for_an_fsync_of_the_partition_slot(
        redis: Any, settings: Settings, deployment: str) -> None:
    """What retention calls before a snapshot or segment leaves Redis: a write in the
    partition's slot, then WAITAOF on the same connection and node (a cluster routes
    both to the partition's primary); True once the primary's file has it."""
    keys = Keys(settings.prefix)
    assert await fence(redis, keys.archive_state(3), timeout_ms=2_000) is True
    assert await redis.hget(keys.archive_state(3), FENCE_FIELD) is not None


async def test_fence_without_an_append_only_file(redis: Any, settings: Settings) -> None:
    """A server that keeps no append-only file loses everything on restart anyway:
    nothing to wait for, and the fence says so instead of failing."""
    before = (await redis.config_get("appendonly"))["appendonly"]
    await redis.config_set("appendonly", "no")
    try:
        assert await fence(redis, Keys(settings.prefix).archive_state(0)) is False
    finally:
        await redis.config_set("appendonly", before)
