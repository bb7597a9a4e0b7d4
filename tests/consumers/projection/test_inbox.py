"""The projection is pure: events → writes, no Redis needed."""

from __future__ import annotations

import pytest

from herald.consumers.errors import ProjectionError
from herald.consumers.projection.registry import NOT_PROJECTED, PROJECTIONS, Context, project
from herald.streams import codec, positions
from herald.streams.events import (
    TYPES,
    AllRead,
    DeliveryFailed,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationUnread,
    PreferencesChanged,
)
from herald.streams.ids import new_id
from herald.streams.keys import Keys
from herald.streams.producer import _Base
from herald.streams.settings import Settings

CTX = Context(3, "v", Keys("herald"))
BASE = _Base(Settings.from_env({}, partitions=8))
NID = new_id(3, 1_700_000_000_000)


def test_every_event_type_is_projected_or_explicitly_not() -> None:
    assert set(PROJECTIONS) | NOT_PROJECTED == set(TYPES)
    assert not set(PROJECTIONS) & NOT_PROJECTED


def test_created_writes_the_content_and_uses_the_event_id() -> None:
    env = BASE.envelope("alice", NotificationCreated(title="T", body="B", category="billing",
                                                     data={"k": [1, "x"]}), time_ms=1234)
    write, known = project(env, "9-1", CTX)
    assert write[:5] == ("create", env.id, "billing", "T", "B")
    # The user is one of the tenant's known users (a broadcast's recipients).
    assert known == ("call", "SADD", CTX.keys.tenant_users(CTX.partition, "", CTX.ns), "alice")
    assert codec.unpack_value(write[5]) == {"k": [1, "x"]}
    assert write[6] == "1234"


def test_created_keeps_a_scheduled_notification_id_and_empty_data_is_empty() -> None:
    env = BASE.envelope("alice", NotificationCreated(title="T", notification_id=NID))
    write, *rest = project(env, "9-1", CTX)  # rest: it leaves the schedule (schedule tests)
    assert write[1] == NID and write[5] == ""
    assert [w[:2] for w in rest] == [("call", "ZREM"), ("call", "DEL"), ("call", "SREM"),
                                     ("call", "SADD")]


@pytest.mark.parametrize(("payload", "op"), [
    (NotificationRead(notification_id=NID), "read"),
    (NotificationUnread(notification_id=NID), "unread"),
    (NotificationArchived(notification_id=NID), "archive"),
    (NotificationDeleted(notification_id=NID), "delete"),
])
def test_state_changes_name_the_item(payload: object, op: str) -> None:
    env = BASE.envelope("alice", payload, time_ms=77)  # type: ignore[arg-type]
    write, *more = project(env, "9-1", CTX)
    assert write[0] == op and write[1] == NID
    if op == "read":
        assert write[2] == "77"
        # kept for a workflow run's conditions, if a run sent it (consumers/workflows/)
        assert more == [("mark_if", CTX.keys.workflow_note(CTX.partition, NID, CTX.ns),
                         "read", "000000000000009-00000000000000000001")]
    else:
        assert more == []


def test_all_read_defaults_to_its_own_position() -> None:
    env = BASE.envelope("alice", AllRead(), time_ms=5)
    assert project(env, "12-3", CTX) == [("read_all", positions.padded("12-3"), "5")]
    env = BASE.envelope("alice", AllRead(up_to="10-0"), time_ms=5)
    assert project(env, "12-3", CTX) == [("read_all", positions.padded("10-0"), "5")]


def test_all_read_with_a_bad_position_is_refused() -> None:
    env = BASE.envelope("alice", AllRead(up_to="yesterday"))
    with pytest.raises(ProjectionError, match="up_to"):
        project(env, "12-3", CTX)


def test_bad_notification_id_is_refused() -> None:
    env = BASE.envelope("alice", NotificationRead(notification_id="not-an-id"))
    with pytest.raises(ProjectionError, match="notification_id"):
        project(env, "1-1", CTX)


def test_types_the_inbox_ignores_write_no_inbox_ops() -> None:
    # Preferences and delivery outcomes have their own projections (plain calls only).
    env = BASE.envelope("alice", PreferencesChanged(preferences={"*": {"sms": False}}))
    assert {w[0] for w in project(env, "1-1", CTX)} == {"call"}
    env = BASE.envelope("alice", DeliveryFailed(notification_id=NID, channel="sms"))
    assert {w[0] for w in project(env, "1-1", CTX)} == {"call"}
