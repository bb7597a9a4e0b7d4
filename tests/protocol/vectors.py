"""The conformance vectors of PROTOCOL.md, built from Herald's own code.

``python -m tests.protocol.vectors`` writes ``tests/protocol/vectors/*.json``;
tests/protocol/test_vectors.py checks the files equal what the code builds now, so a
change of the wire format shows up as a change of these files (and of the protocol's
version). Another implementation proves itself against the same files: the
producers in tests/protocol/node and tests/protocol/shell do.

Everything is deterministic: fixed ids and times, sealing off (a sealed case carries
fixed bytes in ``s``: the wire format does not depend on what they hold).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from herald.streams import codec
from herald.streams.events import (
    AllRead,
    BusinessEventReceived,
    ContactChanged,
    DeliveryAttempted,
    DeliveryExpired,
    DeliveryFailed,
    DeliverySkipped,
    DeliverySucceeded,
    DeviceRegistered,
    DeviceRemoved,
    DigestItemAdded,
    Envelope,
    InboxBulkMarked,
    InboxSeen,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationScheduled,
    NotificationSnoozed,
    NotificationUnarchived,
    NotificationUnread,
    NotificationWoke,
    Payload,
    PreferencesChanged,
    ProfileChanged,
    ScheduleCancelled,
    TemplateRegistered,
    TokensRevoked,
    TopicSubscribed,
    TopicUnsubscribed,
    UserErased,
    WorkflowRegistered,
    WorkflowRunEnded,
    WorkflowStepDecided,
    WorkflowTimerFired,
    WorkflowTriggered,
)
from herald.streams.ids import compose
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.scripts import lua_path, script_source

FOLDER = Path(__file__).resolve().parent / "vectors"
REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 64
PREFIX = "herald"
SPAN_MS = 86_400_000  # HERALD_DEDUPE_WINDOW's default
MAX_EVENT_BYTES = 65_536
T0 = 1_765_000_000_000  # 2025-12-06T05:46:40Z
STREAMS = REPO / "streams"


def event_id(user: str, ms: int, n: int) -> str:
    """A fixed id of ``user``'s partition: random bits from a counter."""
    return compose(ms, (0x5EED << 40) + n, partition_for(user, PARTITIONS))


def to_json(value: Any) -> Any:
    """A decoded msgpack value as JSON (tuples as lists; bytes are not expected)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    assert not isinstance(value, bytes)
    return value


def event_doc(env: Envelope) -> dict[str, Any]:
    """The envelope as the map the entry holds, in JSON (``s`` as ``s_hex``)."""
    doc = codec.unpack_binary(codec.encode(env))
    out = {k: to_json(v) for k, v in doc.items() if k != "s"}
    if "s" in doc:
        out["s_hex"] = doc["s"].hex()
    return out


def envelope_of(doc: dict[str, Any]) -> Envelope:
    """The Envelope an event document stands for (what the vector tests encode)."""
    payload = codec.payload_from_dict(doc["t"], doc["v"], doc["d"])
    return Envelope(id=doc["i"], user=doc["u"], time=doc["ts"], payload=payload,
                    idempotency_key=doc.get("k"), correlation=doc.get("c"),
                    sealed=bytes.fromhex(doc["s_hex"]) if "s_hex" in doc else None)


def _cases() -> list[tuple[str, str, Payload, dict[str, Any]]]:
    nid = event_id("alice", T0, 1)
    return [
        ("notification.created, only a title", "alice",
         NotificationCreated(title="Hello"), {}),
        ("notification.created, every field", "alice", NotificationCreated(
            title="订单已发货", body="Your order #42 is on its way 🚚", category="orders",
            data={"order": 42, "total": 19.5, "refund": -3, "gift": False, "note": None,
                  "items": ["book", "pen"], "shop": {"name": "Ünïcode"}},
            channels=("in_app", "webhook", "sms"), expires_at=T0 + 3_600_000,
            recipients={"sms": "+8613800000000"}),
         {"idempotency_key": "order-42-shipped", "correlation": "checkout-7"}),
        ("notification.created, sealed (title, body, data and recipients in s)", "alice",
         NotificationCreated(title="", category="security", channels=("in_app", "email")),
         {"sealed": bytes(range(40))}),
        ("notification.created, a digest summary", "bob", NotificationCreated(
            title="2 updates", notification_id=nid, data={"digest": [{"title": "a"}]},
            digest_of={"key": "daily", "window_end": T0, "positions": ["1765-0", "1765-1"]}),
         {"idempotency_key": f"digest:bob:daily:{T0}"}),
        ("notification.scheduled", "alice", NotificationScheduled(
            title="Reminder", deliver_at=T0 + 600_000, cancel_key="appointment-9"), {}),
        ("digest.item_added", "bob", DigestItemAdded(
            title="A comment", digest_key="comments", window_end=T0 + 3_600_000), {}),
        ("schedule.cancelled", "alice", ScheduleCancelled(cancel_key="appointment-9"), {}),
        ("notification.read", "alice", NotificationRead(notification_id=nid), {}),
        ("notification.unread", "alice", NotificationUnread(notification_id=nid), {}),
        ("notification.archived", "alice", NotificationArchived(notification_id=nid), {}),
        ("notification.deleted", "alice", NotificationDeleted(notification_id=nid), {}),
        ("notification.all_read, up to a position", "alice",
         AllRead(up_to="1765000000000-7"), {}),
        ("notification.all_read, up to itself", "alice", AllRead(), {}),
        ("preferences.changed", "alice", PreferencesChanged(
            preferences={"marketing": {"sms": False, "email": False}, "*": {"sms": True}}), {}),
        ("profile.changed", "alice", ProfileChanged(
            phone="+8613800000000", email="alice@example.com",
            webhook_url="https://example.com/hook", webhook_secret="whsec_c2VjcmV0"), {}),
        ("profile.changed, cleared", "alice", ProfileChanged(), {}),
        ("user.erased", "alice", UserErased(), {}),
        ("user.tokens_revoked", "alice", TokensRevoked(before=T0), {}),
        ("notification.seen", "张三", InboxSeen(), {}),
        ("notification.unarchived", "alice", NotificationUnarchived(notification_id=nid), {}),
        ("notification.snoozed", "alice", NotificationSnoozed(
            notification_id=nid, until=T0 + 3_600_000), {}),
        ("notification.woke", "alice", NotificationWoke(
            notification_id=nid, until=T0 + 3_600_000),
         {"idempotency_key": f"wake:{nid}:{T0 + 3_600_000}"}),
        ("notification.bulk_marked", "alice", InboxBulkMarked(
            action="read", category="orders", up_to="1765000000000-7"), {}),
        ("topic.subscribed, a tenant's user", "acme\x1falice", TopicSubscribed(
            topic="releases"), {}),
        ("topic.unsubscribed", "alice", TopicUnsubscribed(topic="releases"), {}),
        ("delivery.attempted", "alice", DeliveryAttempted(
            notification_id=nid, channel="webhook", attempt=1), {"idempotency_key":
                                                                 f"d:{nid}:webhook:1:a"}),
        ("delivery.succeeded", "alice", DeliverySucceeded(
            notification_id=nid, channel="webhook", attempt=1, detail="200"), {}),
        ("delivery.failed, to be retried", "alice", DeliveryFailed(
            notification_id=nid, channel="sms", attempt=2, detail="503",
            retry_at=T0 + 30_000), {}),
        ("delivery.failed, final", "alice", DeliveryFailed(
            notification_id=nid, channel="sms", attempt=5, detail="gave up", final=True), {}),
        ("delivery.skipped", "alice", DeliverySkipped(
            notification_id=nid, channel="email", detail="no address"), {}),
        ("delivery.expired", "alice", DeliveryExpired(
            notification_id=nid, channel="wechat", detail="expired before it could be sent"),
         {}),
        ("notification.created, critical, SMS only, from a template", "alice",
         NotificationCreated(
             title="Your code", channels=("sms",), priority="critical", inbox=False,
             template={"id": "login-code", "version": 2, "locale": "zh-CN"},
             variants={"sms": {"text": "验证码 123456", "template_code": "SMS_1",
                               "params": {"code": "123456"}}}), {}),
        ("preferences.changed, with quiet hours", "alice", PreferencesChanged(
            preferences={"*": {"push": True}},
            quiet_hours={"start": "22:00", "end": "08:00", "timezone": "Asia/Shanghai"}), {}),
        ("profile.changed, WeCom and locale", "alice", ProfileChanged(
            wecom_userid="zhangsan", locale="zh-CN"), {}),
        ("contact.changed", "alice", ContactChanged(kind="phone", value="+8613800000000"), {}),
        ("contact.changed, removed", "alice", ContactChanged(kind="wechat_openid"), {}),
        ("device.registered", "alice", DeviceRegistered(
            device_id="0123456789abcdef", platform="apns", token="ab" * 32,
            app="com.example.shop"), {}),
        ("device.removed", "alice", DeviceRemoved(
            device_id="0123456789abcdef", reason="provider: Unregistered"), {}),
        ("template.registered", "~templates", TemplateRegistered(
            template_id="order-shipped", version=1,
            definition={"title": "Order {{ order }} shipped", "body": "",
                        "locales": {"zh-CN": {"title": "订单 {{ order }} 已发货"}}}), {}),
        ("workflow.registered", "~workflows", WorkflowRegistered(
            workflow_key="order-unpaid", version=1,
            definition={"steps": [{"id": "remind", "type": "send", "channels": ["sms"],
                                   "title": "Order {{ order_id }} is not paid"}]}), {}),
        ("workflow.triggered", "alice", WorkflowTriggered(
            workflow_key="order-unpaid", version=1, data={"order_id": "A1"},
            cancel_key="order:A1"), {}),
        ("workflow.step_decided, skipped", "alice", WorkflowStepDecided(
            run_id="01HF7YAT004C3BSXSEQ76JFC03", step="sms", index=4, outcome="skipped",
            at="1700000000000-0", condition="!steps.remind.read", result=False,
            data={"steps": {"remind": {"read": True}}}), {}),
        ("workflow.step_decided, waiting", "alice", WorkflowStepDecided(
            run_id="01HF7YAT004C3BSXSEQ76JFC03", step="paid", index=3, outcome="waiting",
            at="1700000000000-0", until=1700000600000, detail="order.paid"), {}),
        ("workflow.run_ended", "alice", WorkflowRunEnded(
            run_id="01HF7YAT004C3BSXSEQ76JFC03", outcome="cancelled",
            at="1700000000001-0", timer="wft.01HF7YAT004C3BSXSEQ76JFC03.3",
            detail="cancel_on order.paid"), {}),
        ("workflow.timer_fired", "alice", WorkflowTimerFired(
            run_id="01HF7YAT004C3BSXSEQ76JFC03", index=3, until=1700000600000), {}),
        ("business.event", "alice", BusinessEventReceived(
            name="order.paid", data={"order_id": "A1"}), {}),
    ]


def entries() -> dict[str, Any]:
    keys = Keys(PREFIX)
    cases = []
    for n, (name, user, payload, extra) in enumerate(_cases(), start=10):
        ms = T0 + n
        env = Envelope(id=event_id(user, ms, n), user=user, time=ms, payload=payload, **extra)
        partition = partition_for(user, PARTITIONS)
        cases.append({"name": name, "event": event_doc(env), "partition": partition,
                      "stream": keys.stream(partition), "entry_hex": codec.encode(env).hex()})
    return {"about": "One log entry per case: the event (the map the entry's field e holds; "
            "s, bytes, as s_hex), the partition of its user among 64, its stream with the "
            "prefix herald, and the exact bytes of e (canonical msgpack: PROTOCOL.md).",
            "partitions": PARTITIONS, "prefix": PREFIX, "cases": cases}


def partitions() -> dict[str, Any]:
    users = ["alice", "bob", "user-42", "a.b@example.com", "0", "Z" * 128,
             "张三", "José", "Ünïcode ✓", "🙂"]
    cases = []
    for user in users:
        digest = hashlib.blake2b(user.encode(), digest_size=8).digest()
        for count in (8, 64, 4096):
            cases.append({"user": user, "utf8_hex": user.encode().hex(),
                          "blake2b_64_hex": digest.hex(), "partitions": count,
                          "partition": partition_for(user, count),
                          "tag": Keys(PREFIX).tag(partition_for(user, count))})
    return {"about": "partition = BLAKE2b (8-byte digest, no key) of the user id's UTF-8 "
            "bytes, read as an unsigned big-endian integer, modulo the partition count. "
            "User ids are ASCII today (PROTOCOL.md, Validation); the non-ASCII cases pin "
            "the function itself.", "cases": cases}


def ids() -> dict[str, Any]:
    cases = []
    for ms, random, partition in [(0, 0, 0), (T0, 0x5EED << 40, 7), (T0, (1 << 68) - 1, 4095),
                                  ((1 << 48) - 1, 12345, 63), (1_700_000_000_000, 1, 1)]:
        cases.append({"ms": ms, "random_hex": f"{random:017x}", "partition": partition,
                      "id": compose(ms, random, partition)})
    return {"about": "id = Crockford base32 (0123456789ABCDEFGHJKMNPQRSTVWXYZ), 26 characters, "
            "most significant first, of the 128-bit value ms << 80 | random << 12 | partition "
            "(ms: 48 bits; random: 68 bits; partition: the low 12 bits).", "cases": cases}


def script() -> dict[str, Any]:
    source = script_source(lua_path(STREAMS, "producer_append"))
    keys = Keys(PREFIX)
    env = envelope_of(entries()["cases"][1]["event"])
    raw = codec.encode(env)
    partition = partition_for(env.user, PARTITIONS)
    bucket = T0 // SPAN_MS
    other = envelope_of(entries()["cases"][0]["event"])
    args = [raw, env.id, env.idempotency_key or "", codec.encode(other), other.id, ""]
    return {
        "about": "The append script: the exact text to SCRIPT LOAD (streams/lua/"
                 "producer_append.lua with its --@include line replaced by streams/lua/"
                 "idempotency.lua), its SHA-1, and one call: KEYS, ARGV (ARGV[3] is msgpack "
                 "with str types only) and the replies it gives.",
        "name": "producer_append", "sha1": hashlib.sha1(source.encode()).hexdigest(),
        "source": source,
        "call": {
            "partitions": PARTITIONS, "prefix": PREFIX, "span_ms": SPAN_MS, "now_ms": T0,
            "keys": [keys.stream(partition),
                     *(keys.idempotency(partition, SPAN_MS, bucket + d) for d in (-2, -1, 0, 1))],
            "argv": [str(SPAN_MS), str(bucket)],
            "argv3_hex": codec.pack_value(args).hex(),
            "events": [{"entry_hex": raw.hex(), "id": env.id, "key": env.idempotency_key},
                       {"entry_hex": codec.encode(other).hex(), "id": other.id, "key": ""}],
        },
        "replies": {
            "appended": "one reply per event, in order: the entry's position (a bulk string "
                        "ms-seq) when it was appended",
            "duplicate": "for an event whose idempotency key has a record: an array [first "
                         "event id, first position]; nothing appended",
            "bucket_error": "an error reply 'BUCKET <s>' when the server's bucket s is not "
                            "b-1, b or b+1: nothing written; send again with b = s",
        },
    }


def _entry(user: str, n: int, **fields: Any) -> Envelope:
    return Envelope(id=event_id(user, T0 + n, n), user=user, time=T0 + n,
                    payload=NotificationCreated(title="Hello", **fields))


def _hex(doc: dict[str, Any]) -> str:
    return codec.pack_binary(doc).hex()


def rejections() -> dict[str, Any]:
    """Entries every consumer dead-letters, with the reason word (PROTOCOL.md)."""
    good = _entry("alice", 1)
    p = partition_for("alice", PARTITIONS)
    doc = codec.unpack_binary(codec.encode(good))

    def changed(**edits: Any) -> dict[str, Any]:
        out = dict(doc)
        for k, v in edits.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
        return out

    bob = _entry("bob", 2)
    other_p = partition_for("bob", PARTITIONS)
    foreign_id = compose(T0, 1, (p + 1) % PARTITIONS)
    cases = [
        ("not msgpack", {"entry_hex": b"\xc1hello".hex()}, "malformed", "not a msgpack event"),
        ("not a map", {"entry_hex": codec.pack_binary([1, 2]).hex()}, "malformed",
         "event is not a map"),
        ("missing field u", {"entry_hex": _hex(changed(u=None))}, "malformed",
         "event lacks field 'u'"),
        ("wrong type: ts a string", {"entry_hex": _hex(changed(ts="1765000000001"))},
         "malformed", "envelope field 'ts' must be an integer"),
        ("wrong type: title an integer",
         {"entry_hex": _hex(changed(d={**doc["d"], "title": 5}))}, "invalid",
         "field 'title' has the wrong type"),
        ("unknown envelope field", {"entry_hex": _hex(changed(x=1))}, "malformed",
         "unknown envelope field 'x'"),
        ("unknown payload field", {"entry_hex": _hex(changed(d={**doc["d"], "colour": "red"}))},
         "invalid", "unknown field 'colour'"),
        ("future wire format", {"entry_hex": _hex(changed(f=2))}, "unknown_version",
         "unknown wire format 2"),
        ("future version", {"entry_hex": _hex(changed(v=2))}, "unknown_version",
         "unknown version 2 of 'notification.created'"),
        ("unknown type", {"entry_hex": _hex(changed(t="order.paid"))}, "unknown_type",
         "unknown event type 'order.paid'"),
        ("oversized", {"entry_hex": codec.encode(_entry("alice", 3, data={
            "blob": "x" * MAX_EVENT_BYTES})).hex()}, "oversized", "the limit is 65536"),
        ("event id not a Herald id", {"entry_hex": _hex(changed(i="order-42"))}, "invalid",
         "is not a Herald id"),
        ("event id of another partition", {"entry_hex": _hex(changed(i=foreign_id))},
         "wrong_partition", f"names partition {(p + 1) % PARTITIONS}"),
        ("user of another partition (bob's entry in alice's stream)",
         {"entry_hex": _hex(changed(u="bob"))}, "wrong_partition",
         f"user 'bob' belongs to partition {other_p}"),
        ("a rule of validation: title too long",
         {"entry_hex": _hex(changed(d={**doc["d"], "title": "x" * 201}))}, "invalid",
         "title: is longer than 200 characters"),
        ("a rule of validation: unknown channel",
         {"entry_hex": _hex(changed(d={**doc["d"], "channels": ["pigeon"]}))}, "invalid",
         "unknown channel 'pigeon'"),
        ("no field e", {"fields": {"event": codec.encode(good).hex()}}, "malformed",
         "the entry has no field 'e'"),
        ("fields besides e", {"fields": {"e": codec.encode(good).hex(), "trace": "74"}},
         "malformed", "the entry has fields besides 'e'"),
    ]
    assert bob.user == "bob"
    return {
        "about": "Entries of partition `partition` (of 64, HERALD_MAX_EVENT_BYTES 65536) that "
                 "every consumer dead-letters: `reason` is the word the letter's reason starts "
                 "with, `detail` a part of the rest. `entry_hex` is the field e; `fields` "
                 "(hex values) an entry of other fields. The last case is a pair: the same "
                 "event id twice; the second is a duplicate.",
        "partition": p, "partitions": PARTITIONS, "max_event_bytes": MAX_EVENT_BYTES,
        "cases": [{"name": name, **where, "reason": reason, "detail": detail}
                  for name, where, reason, detail in cases],
        "duplicate": {"entries_hex": [codec.encode(good).hex(), codec.encode(good).hex()],
                      "reason": "duplicate", "detail": "its event id was already applied at"},
    }


BUILDERS = {"partitions": partitions, "ids": ids, "entries": entries, "script": script,
            "rejections": rejections}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def main() -> int:
    FOLDER.mkdir(exist_ok=True)
    for name, build in BUILDERS.items():
        (FOLDER / f"{name}.json").write_text(render(build()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
