"""Whatever the Python producer writes, a decoder written from PROTOCOL.md alone reads
back — and its canonical encoder gives the same bytes again.

Nothing here uses msgpack, msgspec or ``herald.streams.codec``: :func:`decode` and
:func:`encode` implement the subset of MessagePack the document lists ("The entry"),
and :func:`check_event` its field table, by hand.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from herald.streams.crypto import DataKey
from herald.streams.events import (
    AllRead,
    DeliveryFailed,
    DeliverySucceeded,
    DigestItemAdded,
    Envelope,
    NotificationCreated,
    NotificationRead,
    NotificationScheduled,
    Payload,
    PreferencesChanged,
    ProfileChanged,
    ScheduleCancelled,
    UserErased,
    new_envelope,
)
from herald.streams.producer import Producer
from herald.streams.settings import Settings

# ------------------------------------------------------------ MessagePack, by hand


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at:self.at + n]
        assert len(chunk) == n, "truncated"
        self.at += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def value(self) -> Any:
        b = self.uint(1)
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0xA0 <= b <= 0xBF:
            return self.take(b & 0x1F).decode("utf-8")
        if 0x90 <= b <= 0x9F:
            return [self.value() for _ in range(b & 0x0F)]
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F)
        simple: dict[int, Any] = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b]
        if b in (0xCC, 0xCD, 0xCE, 0xCF):
            return self.uint(1 << (b - 0xCC))
        if b in (0xD0, 0xD1, 0xD2, 0xD3):
            n = 1 << (b - 0xD0)
            return int.from_bytes(self.take(n), "big", signed=True)
        if b == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if b == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if b in (0xD9, 0xDA, 0xDB):
            return self.take(self.uint(1 << (b - 0xD9))).decode("utf-8")
        if b in (0xC4, 0xC5, 0xC6):
            return self.take(self.uint(1 << (b - 0xC4)))
        if b in (0xDC, 0xDD):
            return [self.value() for _ in range(self.uint(2 if b == 0xDC else 4))]
        if b in (0xDE, 0xDF):
            return self.map(self.uint(2 if b == 0xDE else 4))
        raise AssertionError(f"a type byte the protocol does not use: {b:#x}")

    def map(self, n: int) -> dict[Any, Any]:
        out = {}
        for _ in range(n):
            key = self.value()
            out[key] = self.value()
        return out


def decode(data: bytes) -> Any:
    reader = Reader(data)
    value = reader.value()
    assert reader.at == len(data), "bytes after the value"
    return value


def _length(n: int, fix: int | None, fix_max: int, codes: tuple[int, ...]) -> bytes:
    if fix is not None and n <= fix_max:
        return bytes([fix | n])
    for code, size in zip(codes, (1, 2, 4)[-len(codes):], strict=True):
        if n < 1 << (8 * size):
            return bytes([code]) + n.to_bytes(size, "big")
    raise AssertionError("too long")


def encode(value: Any) -> bytes:
    """The canonical form: the shortest encoding of each value, maps in their order."""
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if 0 <= value <= 0x7F or -32 <= value < 0:
            return (value & 0xFF).to_bytes(1, "big")
        if value > 0:
            for code, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
                if value < 1 << (8 * size):
                    return bytes([code]) + value.to_bytes(size, "big")
        for code, size in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
            if value >= -(1 << (8 * size - 1)):
                return bytes([code]) + value.to_bytes(size, "big", signed=True)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _length(len(data), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + data
    if isinstance(value, bytes):
        return _length(len(value), None, 0, (0xC4, 0xC5, 0xC6)) + value
    if isinstance(value, list):
        return _length(len(value), 0x90, 15, (0xDC, 0xDD)) + b"".join(map(encode, value))
    if isinstance(value, dict):
        return _length(len(value), 0x80, 15, (0xDE, 0xDF)) + b"".join(
            encode(k) + encode(v) for k, v in value.items())
    raise AssertionError(f"not a protocol value: {value!r}")


# ------------------------------------------------------ the document's field table

ENVELOPE = {"f": int, "i": str, "t": str, "v": int, "u": str, "ts": int, "k": str, "c": str,
            "s": bytes, "d": dict}
ORDER = ["f", "i", "t", "v", "u", "ts", "d", "k", "c", "s"]
_CONTENT = {"title": str, "body": str, "category": str, "data": dict, "channels": list,
            "notification_id": str, "expires_at": int, "recipients": dict}
_DELIVERY = {"notification_id": str, "channel": str, "attempt": int, "detail": str}
PAYLOADS: dict[tuple[str, int], dict[str, type]] = {
    ("notification.created", 1): {**_CONTENT, "digest_of": dict},
    ("notification.scheduled", 1): {**_CONTENT, "deliver_at": int, "cancel_key": str},
    ("digest.item_added", 1): {**_CONTENT, "digest_key": str, "window_end": int},
    ("schedule.cancelled", 1): {"cancel_key": str, "notification_id": str},
    ("notification.read", 1): {"notification_id": str},
    ("notification.unread", 1): {"notification_id": str},
    ("notification.archived", 1): {"notification_id": str},
    ("notification.deleted", 1): {"notification_id": str},
    ("notification.all_read", 1): {"up_to": str},
    ("preferences.changed", 1): {"preferences": dict},
    ("profile.changed", 1): {"phone": str, "email": str, "wechat_openid": str,
                             "webhook_url": str, "webhook_secret": str},
    ("user.erased", 1): {},
    **{(f"delivery.{kind}", 1): dict(_DELIVERY) for kind in
       ("attempted", "succeeded", "skipped", "expired")},
    ("delivery.failed", 1): {**_DELIVERY, "final": bool, "retry_at": int},
}


def check_event(doc: Any) -> None:
    """The document's rules for the map of an entry (types exact: bool is not int)."""
    assert isinstance(doc, dict) and doc["f"] == 1
    assert [k for k in ORDER if k in doc] == list(doc), "keys in the documented order"
    for key, value in doc.items():
        assert type(value) is ENVELOPE[key], key
    fields = PAYLOADS[(doc["t"], doc["v"])]
    assert list(doc["d"]) == [n for n in fields if n in doc["d"]], "payload fields in order"
    for name, value in doc["d"].items():
        assert type(value) is fields[name], name
        if fields[name] is list:
            assert all(type(x) is str for x in value)


# --------------------------------------------------------------------- the events

USER = st.from_regex(r"\A[A-Za-z0-9_.@-]{1,20}\Z").filter(lambda u: u != "me")
KEY = st.from_regex(r"\A[A-Za-z0-9_.:@/+=-]{1,40}\Z")
CATEGORY = st.from_regex(r"\A[A-Za-z0-9_.-]{1,20}\Z")
TEXT = st.text(max_size=40)
SCALAR = st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | \
    st.floats(allow_nan=False) | TEXT
DATA = st.dictionaries(TEXT, st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) |
                                          st.dictionaries(TEXT, inner, max_size=4),
                                          max_leaves=12), max_size=6)
CHANNELS = st.lists(st.sampled_from(["in_app", "webhook", "sms", "wechat", "email"]),
                    min_size=1, max_size=5, unique=True).map(tuple)
TITLE = st.text(min_size=1, max_size=200).filter(str.strip)
MS = st.integers(0, (1 << 48) - 1)
NID = st.just("01KBS35CGA002YXM0000001809")


def content(cls: type[Payload], **more: Any) -> st.SearchStrategy[Payload]:
    return st.builds(cls, title=TITLE, body=st.text(max_size=100), category=CATEGORY,
                     data=DATA, channels=CHANNELS, expires_at=st.none() | MS,
                     recipients=st.just({}) | st.just({"sms": "+8613800000000"}), **more)


PAYLOAD = st.one_of(
    content(NotificationCreated),
    content(NotificationScheduled, deliver_at=MS, cancel_key=st.none() | KEY),
    content(DigestItemAdded, digest_key=KEY, window_end=MS),
    st.builds(ScheduleCancelled, cancel_key=KEY),
    st.builds(NotificationRead, notification_id=NID),
    st.builds(AllRead, up_to=st.none() | st.just("1765000000000-3")),
    st.builds(PreferencesChanged, preferences=st.dictionaries(
        CATEGORY, st.dictionaries(st.sampled_from(["sms", "email"]), st.booleans()),
        max_size=3)),
    st.builds(ProfileChanged, phone=st.none() | st.just("+8613800000000"),
              webhook_secret=st.none() | st.just("whsec_abc")),
    st.just(UserErased()),
    st.builds(DeliverySucceeded, notification_id=NID, channel=st.just("sms"),
              attempt=st.integers(0, 10), detail=TEXT),
    st.builds(DeliveryFailed, notification_id=NID, channel=st.just("email"),
              attempt=st.integers(0, 10), detail=TEXT, final=st.booleans(),
              retry_at=st.none() | MS),
)
KEYS: dict[str, DataKey] = {}  # one data key per user, made on first use
SETTINGS = Settings.from_env({}, partitions=64)  # the producer here touches no server


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USER, payload=PAYLOAD, key=st.none() | KEY, corr=st.none() | KEY,
       sealed=st.booleans())
def test_what_the_producer_writes_reads_back_by_the_document(
        user: str, payload: Payload, key: str | None, corr: str | None, sealed: bool) -> None:
    env = new_envelope(user, payload, SETTINGS.partitions, idempotency_key=key,
                       correlation=corr)
    producer = Producer(None, SETTINGS)
    data_keys = {user: KEYS.setdefault(user, DataKey.create())} if sealed else {}
    [group] = producer._prepare([env], data_keys)
    raw = group.args[0]
    doc = decode(raw)
    check_event(doc)
    assert (doc["i"], doc["u"], doc["ts"], doc["t"], doc["v"]) == (
        env.id, env.user, env.time, env.type, env.version)
    assert (doc.get("k"), doc.get("c")) == (key, corr)
    assert ("s" in doc) == (sealed and type(payload) in _SEALABLE)
    if "s" not in doc:  # what the document says each field holds
        expected = {f: v for f, v in _fields(payload).items() if v is not None}
        assert doc["d"] == _plain(expected)
    assert encode(doc) == raw  # and back: the canonical form is what Herald writes


_SEALABLE = (NotificationCreated, NotificationScheduled, DigestItemAdded, ProfileChanged)


def _fields(payload: Payload) -> dict[str, Any]:
    return {f.name: getattr(payload, f.name) for f in dataclasses.fields(payload)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def test_envelope_round_trip_of_a_fixed_event() -> None:
    env = Envelope(id="01KBS35CGA002YXM0000001809", user="alice", time=1765000000010,
                   payload=NotificationCreated(title="Hello"))
    raw = Producer(None, SETTINGS)._prepare([env], {})[0].args[0]
    assert decode(raw)["d"]["title"] == "Hello" and encode(decode(raw)) == raw
