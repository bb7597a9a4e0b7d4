"""Codec: exact round-trips (hypothesis) and named failures."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.streams import codec
from herald.streams.errors import CodecError
from herald.streams.events import (
    AllRead,
    DeliveryFailed,
    Envelope,
    NotificationCreated,
    NotificationRead,
    NotificationScheduled,
    PreferencesChanged,
    ProfileChanged,
)
from herald.streams.ids import new_id

json_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
json_data = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)


def envelope(payload: object, **kw: object) -> Envelope:
    return Envelope(id=new_id(3), user="u-1", time=1_700_000_000_000, payload=payload, **kw)  # type: ignore[arg-type]


@given(
    title=texts.filter(lambda t: t.strip()),
    body=texts,
    data=st.dictionaries(st.text(max_size=8), json_data, max_size=5),
    channels=st.lists(st.sampled_from(["in_app", "sms", "email"]), min_size=1, unique=True),
    key=st.none() | st.text(alphabet="abc123-_", min_size=1, max_size=10),
)
@settings(max_examples=150, deadline=None)
def test_created_round_trips_exactly(
    title: str, body: str, data: dict, channels: list[str], key: str | None
) -> None:
    original = envelope(
        NotificationCreated(title=title, body=body, data=data, channels=tuple(channels)),
        idempotency_key=key,
    )
    assert codec.decode(codec.encode(original)) == original


@pytest.mark.parametrize(
    "payload",
    [
        NotificationRead(notification_id=new_id(3)),
        AllRead(up_to="1700000000000-5"),
        AllRead(),
        NotificationScheduled(
            title="订单未支付", deliver_at=1_800_000_000_000, cancel_key="order-1"
        ),
        PreferencesChanged(preferences={"billing": {"sms": False}, "*": {"email": True}}),
        ProfileChanged(phone="+8613800138000", email="a@example.com"),
        DeliveryFailed(notification_id=new_id(3), channel="sms", attempt=2, final=True),
    ],
)
def test_every_kind_of_payload_round_trips(payload: object) -> None:
    original = envelope(payload, correlation="c-1")
    assert codec.decode(codec.encode(original)) == original


def test_chinese_text_round_trips_byte_for_byte() -> None:
    original = envelope(
        NotificationCreated(title="您的订单即将超时", body="请在 15 分钟内支付 ¥128.00")
    )
    decoded = codec.decode(codec.encode(original))
    assert isinstance(decoded.payload, NotificationCreated)
    assert decoded.payload.title.encode() == "您的订单即将超时".encode()


@given(st.binary(max_size=64))
@settings(max_examples=200, deadline=None)
def test_garbage_never_escapes_as_anything_but_codec_error(raw: bytes) -> None:
    try:
        codec.decode(raw)
    except CodecError as exc:
        assert exc.reason in {"malformed", "unknown_type", "unknown_version", "invalid"}


def _raw(**overrides: object) -> bytes:
    doc = {
        "f": 1,
        "i": new_id(1),
        "t": "notification.read",
        "v": 1,
        "u": "u",
        "ts": 1,
        "d": {"notification_id": new_id(1)},
    }
    doc.update(overrides)
    return msgpack.packb(doc)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc1not msgpack", "malformed"),
        (msgpack.packb([1, 2]), "malformed"),
        (_raw(t="notification.exploded"), "unknown_type"),
        (_raw(v=99), "unknown_version"),
        (_raw(f=2), "unknown_version"),
        (_raw(d={"notification_id": 5}), "invalid"),
        (_raw(d={"notification_id": "x", "extra": 1}), "invalid"),
        (_raw(d={}), "invalid"),
    ],
    ids=["not-msgpack", "not-a-map", "type", "version", "format", "field-type", "extra-field",
         "missing-field"],  # the raw bytes hold a new event id per run
)
def test_bad_entries_raise_codec_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        codec.decode(raw)
    assert info.value.reason == reason


def test_decode_refuses_what_the_msgpack_decoder_refused() -> None:
    """Entries are decoded with msgspec; garbage is still a CodecError with a reason."""
    good = codec.encode(Envelope(id="01HF7YAT00APF0XHPYJ0P8BC1Z", user="u", time=1,
                                 payload=NotificationCreated(title="t")))
    cases = {
        b"": "malformed", b"\xc1": "malformed", good + b"x": "malformed",
        msgpack.packb([1, 2]): "malformed", msgpack.packb({1: 2}): "unknown_version",
    }
    for raw, reason in cases.items():
        with pytest.raises(CodecError) as info:
            codec.decode(raw)
        assert info.value.reason == reason, raw
    doc = msgpack.unpackb(good)
    doc["d"][7] = "x"  # a non-string key in the payload
    with pytest.raises(CodecError) as info:
        codec.decode(msgpack.packb(doc))
    assert info.value.reason == "invalid"


def _outcome(build: object, *args: object) -> object:
    try:
        return build(*args)  # type: ignore[operator]
    except CodecError as exc:
        return ("error", exc.reason, str(exc))


_FIELDS = {cls: [f for f, *_ in spec] for cls, spec in codec._FIELDS.items()}
_values = (json_leaf | st.floats(allow_nan=False) | st.lists(json_leaf, max_size=3)
           | st.dictionaries(json_leaf.filter(lambda v: v is not None), json_data, max_size=3)
           | st.lists(st.text(max_size=4), max_size=3))


@st.composite
def payload_maps(draw: st.DrawFn) -> tuple[type, dict[object, object]]:
    """A payload class and a map of mostly its own field names with values of any
    type (sometimes the right one), now and then a name it does not have."""
    cls = draw(st.sampled_from(sorted(_FIELDS, key=lambda c: c.TYPE)))
    own = st.sampled_from(_FIELDS[cls]) if _FIELDS[cls] else st.nothing()
    names = own | st.text(max_size=6)
    return cls, draw(st.dictionaries(names, _values, max_size=6))


@given(payload_maps())
@settings(max_examples=600, deadline=None)
def test_the_fast_path_builds_what_the_field_checks_build(case: tuple[type, dict]) -> None:
    """payload_from_dict (msgspec first) and the Python checks alone agree on every map:
    the same payload, or the same refusal with the same reason and text."""
    cls, data = case
    fast = _outcome(codec.payload_from_dict, cls.TYPE, cls.VERSION, data)
    assert fast == _outcome(codec._checked, cls, data)
    if not isinstance(fast, tuple):
        assert type(fast) is cls


@pytest.mark.parametrize(("data", "expected"), [
    ({"title": "t", "expires_at": True}, "wrong type"),  # bool is not an int
    ({"title": "t", "body": None}, "wrong type"),
    ({"title": "t", "channels": ["sms"]}, NotificationCreated(title="t", channels=("sms",))),
    ({"title": "t", "channels": ["sms", 1]}, "must hold strings"),
    ({"title": "t", "data": {1: "x"}}, NotificationCreated(title="t", data={1: "x"})),
    ({"title": "t", "recipients": {"sms": 1}},
     NotificationCreated(title="t", recipients={"sms": 1})),  # type: ignore[dict-item]
    ({"title": "t", "shiny": 1}, "unknown field 'shiny'"),
    ({"body": "b"}, "title"),
])
def test_payload_maps_on_both_paths(data: dict, expected: object) -> None:
    """Cases where msgspec alone would decide differently from the field checks: the
    result is the field checks' (the fast path refuses, the checks decide)."""
    if isinstance(expected, str):
        with pytest.raises(CodecError, match=expected) as info:
            codec.payload_from_dict("notification.created", 1, data)
        assert info.value.reason == "invalid"
    else:
        assert codec.payload_from_dict("notification.created", 1, data) == expected
