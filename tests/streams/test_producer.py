"""Producer: appends, batches, idempotency under concurrency, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.streams import codec, sealing
from herald.streams.connection import connect_sync
from herald.streams.errors import IdempotencyConflictError, ValidationError
from herald.streams.events import Envelope, NotificationCreated, NotificationRead
from herald.streams.ids import new_id
from herald.streams.producer import Producer, SyncProducer
from herald.streams.settings import Settings
from tests.conftest import log_entries


async def test_publish_appends_to_the_users_partition(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    env = producer.envelope("alice", NotificationCreated(title="你好", data={"order": 7}))
    appended = await producer.publish(env)
    assert not appended.duplicate
    assert appended.id == env.id
    assert appended.partition == producer.partition("alice")
    assert await log_entries(redis, settings, appended.partition) == [env]
    # In the log itself the personal fields are sealed: neither the title nor the data.
    [(_, fields)] = await redis.xrange(producer.keys.stream(appended.partition))
    assert "你好".encode() not in fields[b"e"] and b"order" not in fields[b"e"]


async def test_with_sealing_off_the_log_holds_the_fields_in_clear(
        redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings.replace(seal=False))
    env = producer.envelope("alice", NotificationCreated(title="plain"))
    appended = await producer.publish(env)
    [(_, fields)] = await redis.xrange(producer.keys.stream(appended.partition))
    assert codec.decode(fields[b"e"]) == env


async def test_publish_many_keeps_per_user_order(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    envs = [producer.envelope(f"u{i % 7}", NotificationCreated(title=f"t{i}")) for i in range(300)]
    results = await producer.publish_many(envs)
    assert [r.id for r in results] == [e.id for e in envs]
    for user in {e.user for e in envs}:
        p = producer.partition(user)
        stored = [e for e in await log_entries(redis, settings, p) if e.user == user]
        assert stored == [e for e in envs if e.user == user]


@pytest.mark.cluster
async def test_idempotency_key_answers_the_first_append(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    first = await producer.publish(
        producer.envelope("bob", NotificationCreated(title="a"), idempotency_key="order-1-paid")
    )
    again = await producer.publish(
        producer.envelope("bob", NotificationCreated(title="a"), idempotency_key="order-1-paid")
    )
    assert again.duplicate and not first.duplicate and not again.conflict
    assert (again.id, again.position) == (first.id, first.position)
    assert len(await log_entries(redis, settings, first.partition)) == 1


async def test_idempotency_key_with_another_payload_is_refused(
        redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    first = await producer.publish(
        producer.envelope("bob", NotificationCreated(title="a"), idempotency_key="order-2")
    )
    with pytest.raises(IdempotencyConflictError) as refused:
        await producer.publish(
            producer.envelope("bob", NotificationCreated(title="b"), idempotency_key="order-2"))
    assert (refused.value.first_id, refused.value.position) == (first.id, first.position)
    many = await producer.publish_many([
        producer.envelope("bob", NotificationCreated(title="c"), idempotency_key="order-2"),
        producer.envelope("bob", NotificationCreated(title="a"), idempotency_key="order-2")])
    assert [(r.duplicate, r.conflict, r.id) for r in many] == [
        (True, True, first.id), (True, False, first.id)]
    sync = SyncProducer(connect_sync(settings), settings)
    try:
        with pytest.raises(IdempotencyConflictError):
            sync.publish(sync.envelope("bob", NotificationCreated(title="d"),
                                       idempotency_key="order-2"))
        assert sync.publish(sync.envelope("bob", NotificationCreated(title="a"),
                                          idempotency_key="order-2")).id == first.id
    finally:
        sync.redis.close()
    assert len(await log_entries(redis, settings, first.partition)) == 1


async def test_idempotency_within_one_batch(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    envs = [
        producer.envelope("bob", NotificationCreated(title="same"), idempotency_key="k")
        for i in range(5)
    ]
    results = await producer.publish_many(envs)
    assert [r.duplicate for r in results] == [False, True, True, True, True]
    assert {r.id for r in results} == {envs[0].id}


@pytest.mark.cluster
async def test_concurrent_publishers_of_one_key_append_once(settings: Settings) -> None:
    from herald.streams.connection import connect

    clients = [connect(settings) for _ in range(8)]
    try:
        producers = [Producer(c, settings) for c in clients]

        async def one(i: int) -> Any:
            p = producers[i % len(producers)]
            return await p.publish(
                p.envelope("carol", NotificationCreated(title="try"), idempotency_key="once")
            )

        results = await asyncio.gather(*(one(i) for i in range(64)))
        assert sum(not r.duplicate for r in results) == 1
        assert len({(r.id, r.position) for r in results}) == 1
        assert len(await log_entries(clients[0], settings, results[0].partition)) == 1
    finally:
        for c in clients:
            await c.aclose()


async def test_dedupe_window_expires(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings.replace(dedupe_window_s=0.05))
    a = await producer.publish(
        producer.envelope("d", NotificationCreated(title="x"), idempotency_key="k")
    )
    await asyncio.sleep(0.15)
    b = await producer.publish(
        producer.envelope("d", NotificationCreated(title="x"), idempotency_key="k")
    )
    assert not b.duplicate and b.id != a.id


async def test_a_bad_event_rejects_the_whole_batch(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    good = producer.envelope("erin", NotificationCreated(title="ok"))
    bad = producer.envelope("erin", NotificationCreated(title="x" * 201))
    with pytest.raises(ValidationError) as info:
        await producer.publish_many([good, bad])
    assert info.value.field == "title"
    assert await redis.xlen(producer.keys.stream(producer.partition("erin"))) == 0


@pytest.mark.parametrize(
    ("user", "payload", "field"),
    [
        ("bad\nuser", NotificationCreated(title="t"), "user"),
        ("me", NotificationCreated(title="t"), "user"),
        ("u", NotificationCreated(title="  "), "title"),
        ("u", NotificationCreated(title="t", category="a b"), "category"),
        ("u", NotificationCreated(title="t", channels=("pigeon",)), "channels.0"),
        ("u", NotificationCreated(title="t", data={"blob": "x" * 20000}), "data"),
        ("u", NotificationRead(notification_id="nope"), "notification_id"),
    ],
)
async def test_validation_names_the_field(
    redis: Any, settings: Settings, user: str, payload: Any, field: str
) -> None:
    producer = Producer(redis, settings)
    with pytest.raises(ValidationError) as info:
        await producer.publish(producer.envelope(user, payload))
    assert info.value.field == field


async def test_total_size_limit(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings.replace(max_event_bytes=1024))
    with pytest.raises(ValidationError) as info:
        await producer.publish(
            producer.envelope("u", NotificationCreated(title="t", body="b" * 2000))
        )
    assert info.value.field == "event"


async def test_id_must_match_the_users_partition(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    wrong = (producer.partition("u") + 1) % settings.partitions
    env = Envelope(id=new_id(wrong), user="u", time=1, payload=NotificationCreated(title="t"))
    with pytest.raises(ValidationError, match="partition"):
        await producer.publish(env)


def test_sync_producer(sync_redis: Any, settings: Settings) -> None:
    producer = SyncProducer(sync_redis, settings)
    env = producer.envelope("frank", NotificationCreated(title="from django"), idempotency_key="s1")
    first = producer.publish(env)
    second = producer.publish(env)
    assert second.duplicate and second.position == first.position
    rows = sync_redis.xrange(producer.keys.stream(first.partition))
    key = producer.data_keys.for_writing_sync(["frank"])["frank"]
    assert [sealing.opened_with(codec.decode(f[b"e"]), key) for _, f in rows] == [env]


@pytest.mark.cluster
async def test_script_flush_is_recovered_without_double_appends(
    redis: Any, settings: Settings
) -> None:
    producer = Producer(redis, settings)
    await producer.publish(producer.envelope("g", NotificationCreated(title="before")))
    await redis.script_flush()
    envs = [producer.envelope(f"u{i}", NotificationCreated(title=str(i))) for i in range(40)]
    results = await producer.publish_many(envs)
    assert [r.id for r in results] == [e.id for e in envs]
    total = 0
    for p in range(settings.partitions):
        total += await redis.xlen(producer.keys.stream(p))
    assert total == 41


@pytest.mark.parametrize("user", ["alice\n", "alice\r\n", "a\x00b", "x" * 257, "用" * 86,
                                  "", "a\x85b", "a\ud800", "me", 7])
def test_user_ids_are_matched_whole(user: Any) -> None:
    from herald.streams.validation import check_user

    with pytest.raises(ValidationError):
        check_user(user)


async def test_a_burst_beyond_the_pool_waits_instead_of_failing(settings: Settings) -> None:
    from herald.streams.connection import connect

    client = connect(settings.replace(redis_max_connections=4))
    try:
        producer = Producer(client, settings)
        envs = [producer.envelope(f"b{i}", NotificationCreated(title="t")) for i in range(200)]
        results = await asyncio.gather(*(producer.publish(e) for e in envs))
        assert [r.id for r in results] == [e.id for e in envs]
    finally:
        await client.aclose()


@pytest.mark.parametrize("user", ["张三", "a/b c", "x" * 256, "用" * 85 + "x", "📬 inbox", "a%2F"])
def test_any_printable_utf8_up_to_256_bytes_is_a_user_id(user: str) -> None:
    from herald.streams.validation import check_user

    assert check_user(user) == user


async def test_a_unicode_user_is_published_to_its_partition(redis: Any, settings: Settings) -> None:
    producer = Producer(redis, settings)
    env = producer.envelope("张三", NotificationCreated(title="你好"))
    appended = await producer.publish(env)
    assert appended.partition == producer.partition("张三")
    assert await log_entries(redis, settings, appended.partition) == [env]
