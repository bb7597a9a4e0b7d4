"""Digest summaries built from collected items (pure)."""

from __future__ import annotations

from herald.consumers.schedule import digest
from herald.consumers.schedule.projection import digest_field, summary_key
from herald.streams import codec
from herald.streams.ids import new_id, partition_of
from herald.streams.validation import Limits, validate_envelope

LIMITS = Limits()


def _items(n: int, **extra: object) -> list[tuple[str, dict[str, object]]]:
    out = []
    for i in range(n):
        item = {"id": new_id(3, 1000 + i), "t": f"#{i + 1} team {i}", "b": "score", "c": "ranking",
                "d": {"rank": i + 1}, "ch": ["in_app"], "r": {}, "ts": 1000 + i, **extra}
        out.append((digest_field(9000, f"{1000 + i}-0"), item))
    return out


def test_one_summary_covers_every_item_with_its_content() -> None:
    items = _items(5)
    summary = digest.build_summary(3, "alice", "daily", 9000, items, LIMITS, now=9001)
    assert summary is not None
    env = summary.envelope
    validate_envelope(env, len(codec.encode(env)), LIMITS)
    assert summary.fields == [f for f, _ in items]
    p = env.payload
    assert p.title.startswith("5 updates: #1 team 0, #2 team 1")  # type: ignore[attr-defined]
    assert p.notification_id == items[0][1]["id"]  # type: ignore[attr-defined]
    assert partition_of(env.id) == 3 and env.user == "alice" and env.time == 9001
    assert env.idempotency_key == summary_key("alice", "daily", 9000, str(items[0][1]["id"]))
    listed = p.data["digest"]  # type: ignore[attr-defined]
    assert listed["count"] == 5 and listed["key"] == "daily" and listed["window_end"] == 9000
    assert [i["position"] for i in listed["items"]] == [f"{1000 + i}-0" for i in range(5)]
    assert listed["items"][2]["data"] == {"rank": 3}
    assert p.category == "ranking" and p.channels == ("in_app",)  # type: ignore[attr-defined]


def test_channels_are_the_union_and_mixed_categories_say_digest() -> None:
    items = _items(2)
    items[1][1]["ch"], items[1][1]["c"] = ["in_app", "email"], "other"
    summary = digest.build_summary(3, "alice", "daily", 9000, items, LIMITS, now=1)
    assert summary is not None
    assert summary.envelope.payload.channels == ("in_app", "email")  # type: ignore[attr-defined]
    assert summary.envelope.payload.category == "digest"  # type: ignore[attr-defined]
    assert summary.envelope.payload.title.startswith("2 updates")  # type: ignore[attr-defined]


def test_items_over_the_data_limit_wait_for_the_next_summary() -> None:
    items = _items(40, d={"blob": "x" * 1500})
    summary = digest.build_summary(3, "alice", "daily", 9000, items, LIMITS, now=1)
    assert summary is not None
    covered = len(summary.fields)
    assert 1 <= covered < 40
    env = summary.envelope
    validate_envelope(env, len(codec.encode(env)), LIMITS)
    rest = digest.build_summary(3, "alice", "daily", 9000, items[covered:], LIMITS, now=1)
    assert rest is not None and rest.fields[0] == items[covered][0]
    assert rest.envelope.idempotency_key != env.idempotency_key


def test_a_single_huge_item_is_still_summarized() -> None:
    items = _items(1, d={"blob": "y" * 15000})
    summary = digest.build_summary(3, "alice", "daily", 9000, items, LIMITS, now=1)
    assert summary is not None and summary.fields == [items[0][0]]
    env = summary.envelope
    validate_envelope(env, len(codec.encode(env)), LIMITS)
    assert summary.envelope.payload.title.startswith("1 update: ")  # type: ignore[attr-defined]


def test_nothing_to_summarize() -> None:
    assert digest.build_summary(3, "alice", "daily", 9000, [], LIMITS, now=1) is None
