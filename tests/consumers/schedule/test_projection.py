"""Pure schedule and digest projections: event → writes, no Redis."""

from __future__ import annotations

import pytest

from herald.consumers.errors import ProjectionError
from herald.consumers.projection.base import WAKE
from herald.consumers.projection.registry import PROJECTIONS, Context, project
from herald.consumers.schedule import projection as ps
from herald.streams import codec, positions
from herald.streams.events import (
    DigestItemAdded,
    Envelope,
    NotificationCreated,
    NotificationScheduled,
    ScheduleCancelled,
)
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings

SETTINGS = Settings.from_env({}, partitions=8, prefix="h")
BASE = Producer(None, SETTINGS)
KEYS = Keys("h")
P = BASE.partition("alice")
CTX = Context(P, "v", KEYS)


def test_every_schedule_type_is_projected() -> None:
    for cls in (NotificationScheduled, ScheduleCancelled, DigestItemAdded):
        assert cls.TYPE in PROJECTIONS


def test_scheduled_adds_the_entry_with_what_it_becomes() -> None:
    env = BASE.envelope("alice", NotificationScheduled(
        title="Pay now", body="deadline soon", channels=("in_app", "sms"), deliver_at=5000,
        cancel_key="order-1"), time_ms=1000, correlation="flow-1")
    zadd, setter, index, wake = project(env, "1000-3", CTX)
    assert zadd == ("call", "ZADD", KEYS.schedule(P), "5000", env.id)
    assert wake == (WAKE, 5000)  # the scheduler is told when it is due
    assert index == ("call", "SADD", KEYS.user_schedules(P, "alice"), env.id)  # for erasure
    assert setter[:3] == ("call", "SET", KEYS.scheduled(P, env.id))
    entry = codec.unpack_value(setter[3])
    assert entry["u"] == "alice" and entry["p"] == "1000-3" and entry["k"] == "order-1"
    assert entry["d"] == 5000 and entry["r"] == "flow-1"
    created = codec.payload_from_dict(NotificationCreated.TYPE, 1, entry["c"])
    assert created == NotificationCreated(title="Pay now", body="deadline soon",
                                          channels=("in_app", "sms"), notification_id=env.id)


def test_cancel_by_key_records_a_marker_that_expires_at_event_time() -> None:
    env = BASE.envelope("alice", ScheduleCancelled(cancel_key="order-1"), time_ms=2000)
    setter, expire = project(env, "2000-0", CTX)
    key = KEYS.schedule_cancelled(P, "alice", "order-1")
    assert setter == ("call", "SET", key, positions.padded("2000-0"))
    assert expire == ("call", "PEXPIREAT", key, str(2000 + ps.CANCEL_KEEP_MS))


def test_drop_and_fired_remove_the_entry() -> None:
    nid = BASE.envelope("alice", ScheduleCancelled(cancel_key="x")).id
    drop = BASE.envelope("alice", ScheduleCancelled(cancel_key="k", notification_id=nid))
    fired = BASE.envelope("alice", NotificationCreated(title="T", notification_id=nid),
                          idempotency_key=ps.fire_key(nid))
    removal = [("call", "ZREM", KEYS.schedule(P), nid), ("call", "DEL", KEYS.scheduled(P, nid)),
               ("call", "SREM", KEYS.user_schedules(P, "alice"), nid)]
    dropped = KEYS.schedule_dropped(P, nid)
    assert project(drop, "3-0", CTX) == [
        *removal, ("call", "SET", dropped, codec.pack_binary(["alice", drop.time])),
        ("call", "PEXPIREAT", dropped, str(drop.time + CTX.status_ttl_ms))]  # "cancelled"
    writes = project(fired, "3-0", CTX)
    assert writes[0][0] == "create" and writes[1:-1] == removal  # last: the known user


def test_a_plain_created_touches_no_schedule() -> None:
    env = BASE.envelope("alice", NotificationCreated(title="T"))
    assert [w[0] for w in project(env, "3-0", CTX)] == ["create", "call"]  # the known user


def test_digest_item_is_collected_under_its_window() -> None:
    env = BASE.envelope("alice", DigestItemAdded(title="#1 Alice", digest_key="daily",
                                                 window_end=86_400_000), time_ms=50)
    hset, zadd, index, wake = project(env, "50-1", CTX)
    assert wake == (WAKE, 86_400_000)
    assert index == ("call", "SADD", KEYS.user_digests(P, "alice"), "daily")  # for erasure
    field = ps.digest_field(86_400_000, "50-1")
    assert field == "000000086400000|" + positions.padded("50-1")
    assert hset[:4] == ("call", "HSET", KEYS.digest(P, "alice", "daily"), field)
    assert codec.unpack_binary(hset[4])["id"] == env.id
    member = ps.digest_member("alice", "daily", field)
    assert zadd == ("call", "ZADD", KEYS.digests_due(P), "86400000", member)
    assert ps.parse_digest_member(member) == ("alice", "daily", 86_400_000, field)
    assert ps.field_position(field) == "50-1"


def _summary(nid: str, key: str | None, items: list[dict[str, object]]) -> Envelope:
    data = {"digest": {"key": "daily", "window_end": 9000, "count": len(items), "items": items}}
    return BASE.envelope("alice", NotificationCreated(title="2 updates", data=data,
                                                      notification_id=nid), idempotency_key=key)


def test_a_summary_removes_exactly_the_items_it_lists() -> None:
    nid = BASE.envelope("alice", ScheduleCancelled(cancel_key="x")).id
    key = ps.summary_key("alice", "daily", 9000, nid)
    env = _summary(nid, key, [{"position": "10-0"}, {"position": "11-2"}, {"position": "bad"}])
    writes = project(env, "20-0", CTX)
    bucket = KEYS.digest(P, "alice", "daily")
    f1, f2 = ps.digest_field(9000, "10-0"), ps.digest_field(9000, "11-2")
    assert ("call", "HDEL", bucket, f1) in writes and ("call", "HDEL", bucket, f2) in writes
    assert ("call", "ZREM", KEYS.digests_due(P), ps.digest_member("alice", "daily", f2)) in writes
    assert sum(1 for w in writes if w[:2] == ("call", "HDEL")) == 2


def test_user_data_that_looks_like_a_summary_removes_nothing() -> None:
    nid = BASE.envelope("alice", ScheduleCancelled(cancel_key="x")).id
    env = _summary(nid, ps.fire_key(nid), [{"position": "10-0"}])
    assert not [w for w in project(env, "20-0", CTX) if w[:2] == ("call", "HDEL")]


def test_summary_keys_stay_valid_idempotency_keys() -> None:
    nid = "01HF7YAT00APF0XHPYJ0P8BC1Z"
    assert ps.summary_key("alice", "daily", 9000, nid) == f"digest:alice:daily:9000:{nid}"
    long = ps.summary_key("u" * 128, "k" * 200, 9000, nid)
    assert long.startswith("digest:h:") and len(long) <= 200
    assert long == ps.summary_key("u" * 128, "k" * 200, 9000, nid)


def test_bad_values_are_refused() -> None:
    env = BASE.envelope("alice", ScheduleCancelled(notification_id="not-an-id"))
    with pytest.raises(ProjectionError):
        ps.project_cancelled(env, "1-0", CTX)
    env = BASE.envelope("alice", NotificationScheduled(title="t", deliver_at=-1))
    with pytest.raises(ProjectionError):
        ps.project_scheduled(env, "1-0", CTX)
