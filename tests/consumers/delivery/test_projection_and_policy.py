"""Pure parts of delivery: projections, preferences, recipients, jobs (no Redis)."""

from __future__ import annotations

import pytest

from herald.consumers.delivery.jobs import Job, job_for, might_concern
from herald.consumers.delivery.policy import allowed, decide
from herald.consumers.delivery.projection import (
    address_digest,
    disabled_detail,
    disabled_field,
    parse_disabled,
)
from herald.consumers.errors import ProjectionError
from herald.consumers.projection.registry import Context, project
from herald.streams import codec, sealing
from herald.streams.crypto import DataKey
from herald.streams.errors import CodecError
from herald.streams.events import (
    DeliveryAttempted,
    DeliveryExpired,
    DeliveryFailed,
    DeliverySkipped,
    DeliverySucceeded,
    NotificationCreated,
    ProfileChanged,
)
from herald.streams.ids import new_id
from herald.streams.keys import Keys
from herald.streams.producer import _Base
from herald.streams.settings import Settings

CTX = Context(3, "v", Keys("herald"), status_ttl_ms=1000)
BASE = _Base(Settings.from_env({}, partitions=8))
NID = new_id(3, 1_700_000_000_000)
STATUS = Keys("herald").status(3, NID)


def calls(writes: list[tuple[object, ...]]) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    for w in writes:
        if w[0] == "mark_if":  # a workflow run's notification (consumers/workflows/)
            continue
        assert w[0] == "call"
        out.setdefault(str(w[1]), []).append(w[2:])
    return out


def fields(args: tuple[object, ...]) -> dict[object, object]:
    return dict(zip(args[1::2], args[2::2], strict=True))


def test_created_with_push_channels_starts_them_pending_with_a_deterministic_expiry() -> None:
    env = BASE.envelope("u", NotificationCreated(title="T", channels=("in_app", "sms", "email"),
                                                 expires_at=99), time_ms=5000)
    writes = project(env, "1-1", CTX)
    assert writes[0][0] == "create"
    by = calls(writes[1:])
    status = fields(by["HSET"][0])
    assert by["HSET"][0][0] == Keys("herald").status(3, env.id)
    assert status["sms:s"] == status["email:s"] == "pending" and status["x"] == "99"
    assert status["ch"] == "in_app,sms,email" and "in_app:s" not in status
    assert by["PEXPIREAT"] == [(by["HSET"][0][0], "6000")]


def test_in_app_only_writes_no_status() -> None:
    env = BASE.envelope("u", NotificationCreated(title="T"), time_ms=5000)
    assert [w[0] for w in project(env, "1-1", CTX)] == ["create", "call"]  # call: known user


@pytest.mark.parametrize(("event", "state"), [
    (DeliveryAttempted(notification_id=NID, channel="sms", attempt=2), "pending"),
    (DeliverySucceeded(notification_id=NID, channel="sms", attempt=2), "sent"),
    (DeliveryFailed(notification_id=NID, channel="sms", attempt=2, retry_at=9), "pending"),
    (DeliveryFailed(notification_id=NID, channel="sms", attempt=2, final=True), "failed"),
    (DeliverySkipped(notification_id=NID, channel="sms", detail="why"), "skipped"),
    (DeliveryExpired(notification_id=NID, channel="sms", attempt=1), "expired"),
])
def test_delivery_events_set_the_channel_state(event: object, state: str) -> None:
    env = BASE.envelope("u", event, time_ms=7000)  # type: ignore[arg-type]
    by = calls(project(env, "1-1", CTX))
    status = fields(by["HSET"][0])
    assert status["sms:s"] == state and status["sms:t"] == "7000"
    assert status["sms:n"] == str(event.attempt)  # type: ignore[attr-defined]
    assert by["PEXPIREAT"] == [(STATUS, "8000")]
    if isinstance(event, DeliveryFailed) and not event.final:
        assert status["sms:next"] == "9" and "HDEL" not in by
    else:
        assert by["HDEL"] == [(STATUS, "sms:next")]


def test_a_disabling_failure_marks_the_profile_and_a_profile_change_clears_it() -> None:
    detail = disabled_detail("https://hooks.example/x", "HTTP 410: gone")
    assert parse_disabled(detail) == address_digest("https://hooks.example/x")
    assert "hooks.example" not in detail
    env = BASE.envelope("u", DeliveryFailed(notification_id=NID, channel="webhook",
                                            attempt=1, final=True, detail=detail), time_ms=4)
    by = calls(project(env, "1-1", CTX))
    profile = Keys("herald").profile(3, "u")
    mark = disabled_field("webhook", address_digest("https://hooks.example/x"))
    assert (profile, mark, "4") in by["HSET"]
    env = BASE.envelope("u", ProfileChanged(webhook_url="https://hooks.example/x"))
    writes = calls(project(env, "1-1", CTX))
    assert writes["DEL"] == [(profile,)]
    assert fields(writes["HSET"][0])["webhook_url"] == "https://hooks.example/x"


def test_a_bad_notification_id_is_refused() -> None:
    env = BASE.envelope("u", DeliverySucceeded(notification_id=NID, channel="sms"))
    bad = env.payload.__class__(notification_id="nope", channel="sms")
    with pytest.raises(ProjectionError):
        project(BASE.envelope("u", bad), "1-1", CTX)


def test_preferences_precedence() -> None:
    prefs = {"*": {"sms": False, "email": True}, "orders": {"sms": True}}
    assert allowed(prefs, "orders", "sms")
    assert not allowed(prefs, "promo", "sms")
    assert allowed(prefs, "promo", "wechat")  # nothing said: allowed
    assert allowed(prefs, "promo", "sms", critical={"promo"})
    assert allowed({}, "x", "webhook")


def job(**kw: object) -> Job:
    values: dict[str, object] = {"notification_id": NID, "channel": "sms", "user": "u",
                                 "position": "1-0", "created_at": 1, "title": "t"}
    values.update(kw)
    return Job(**values)  # type: ignore[arg-type]


def test_decide_orders_expiry_preferences_address_and_disabled_endpoints() -> None:
    profile = {"phone": "+8613800000000"}
    assert decide(job(expires_at=10), 10, profile, {}).action == "expire"
    assert decide(job(), 10, profile, {"*": {"sms": False}}).action == "skip"
    assert "no phone" in decide(job(), 10, {}, {}).reason
    sent = decide(job(overrides={"sms": "+8613900000000"}), 10, profile, {})
    assert sent.action == "send" and sent.job.address == "+8613900000000"
    off = {**profile, disabled_field("sms", address_digest("+8613800000000")): "5"}
    assert "disabled" in decide(job(), 10, off, {}).reason


def test_jobs_round_trip_and_name_their_steps() -> None:
    original = job(address="+8613812345678", secret=None, data={"k": [1]}, expires_at=5,
                   attempt=3, title="Your parcel is on its way")  # long: never by chance
    key = DataKey.create()
    stored = original.pack(key)
    for personal in (b"+8613812345678", original.title.encode()):  # sealed at rest
        assert personal not in stored
    bare, sealed = Job.unpack(stored)
    assert sealed is not None and bare.title == "" and not bare.erased
    assert bare.with_personal(sealing.open_with(sealed, key, "u")) == original
    assert Job.unpack(original.pack(None, sealing=False)) == (original, None)
    erased, nothing = Job.unpack(original.pack(None))  # sealing on, the key gone
    assert erased.erased and nothing is None and decide(erased, 10, {}, {}).action == "skip"
    with pytest.raises(CodecError):
        Job.unpack(codec.pack_value([2, "x"]))
    assert original.key("o") == f"d:{NID}:sms:3:o"
    user, event, key = original.skipped("why")
    assert (user, event.attempt, key) == ("u", 2, f"d:{NID}:sms:3:o")
    assert original.next_attempt().attempted()[2] == f"d:{NID}:sms:4:a"


def test_only_created_events_naming_the_channel_become_jobs() -> None:
    env = BASE.envelope("u", NotificationCreated(title="T", channels=("sms",)))
    raw = codec.encode(env)
    assert might_concern(raw, b"sms") and not might_concern(raw, b"webhook")
    made = job_for(env, "5-0", "sms")
    assert made is not None and made.notification_id == env.id and made.position == "5-0"
    assert job_for(env, "5-0", "email") is None
    scheduled = BASE.envelope("u", NotificationCreated(title="T", channels=("sms",),
                                                       notification_id=NID))
    assert job_for(scheduled, "6-0", "sms").notification_id == NID  # type: ignore[union-attr]
