"""The msgpack codec: the only module that knows the log's wire format.

Wire format (format version 1): a msgpack map with short keys
``{"f": 1, "i": id, "t": type, "v": version, "u": user, "ts": ms, "k": idem key,
"c": correlation, "s": sealed bytes, "a": actor, "d": {payload fields}}``. None-valued payload
fields and envelope fields are left out. Strings are UTF-8 and round-trip exactly.

Every failure raises :class:`CodecError` (``from`` the original error) with a
``reason``: ``malformed`` (not msgpack / wrong shape), ``unknown_type``,
``unknown_version`` or ``invalid`` (a field of the wrong type) — consumers put the
reason on the dead letter.
"""

from __future__ import annotations

import dataclasses
import operator
import threading
import types
import typing
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack
import msgspec

from herald.streams.errors import CodecError
from herald.streams.events import REGISTRY, TYPES, Envelope, Payload

WIRE_FORMAT = 1
ENTRY_FIELD = b"e"  # the single field of every stream entry
_local = threading.local()  # one reusable Packer pair per thread (packb builds one per call)


def _packers() -> tuple[msgpack.Packer, msgpack.Packer]:
    """(bin-typed for log entries, str-only for Lua arguments) of this thread."""
    try:
        return _local.packers  # type: ignore[no-any-return]
    except AttributeError:
        _local.packers = (msgpack.Packer(use_bin_type=True), msgpack.Packer(use_bin_type=False))
        return _local.packers  # type: ignore[no-any-return]


def _spec(tp: Any) -> tuple[tuple[type, ...], bool, bool]:
    """(accepted python types, optional, is_tuple) for one annotation."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0]
        origin = typing.get_origin(tp)
    base = origin or tp
    if base is tuple:
        return (list, tuple), optional, True
    if base is float:
        return (int, float), optional, False
    if base is int:
        return (int,), optional, False
    return (base,), optional, False


_FIELDS: dict[type[Payload], tuple[tuple[str, tuple[type, ...], bool, bool], ...]] = {}
for _cls in REGISTRY.values():
    _hints = typing.get_type_hints(_cls)
    _FIELDS[_cls] = tuple((f.name, *_spec(_hints[f.name])) for f in dataclasses.fields(_cls))


_GETTERS = {
    cls: (tuple(f[0] for f in spec), operator.attrgetter(*(f[0] for f in spec)))
    for cls, spec in _FIELDS.items() if spec
}


def payload_to_dict(payload: Payload) -> dict[str, Any]:
    """The payload's fields as a plain map (None values left out; tuples stay tuples,
    which msgpack and JSON write as arrays)."""
    found = _GETTERS.get(type(payload))
    if found is None:  # a payload without fields
        return {}
    names, getter = found
    if len(names) == 1:
        value = getter(payload)
        return {} if value is None else {names[0]: value}
    values = getter(payload)
    return {name: value for name, value in zip(names, values, strict=True) if value is not None}


class _Spec(typing.NamedTuple):
    """How to check one payload class's decoded map (see payload_from_dict)."""

    accepts: dict[str, frozenset[type]]  # field → exact types (NoneType if optional)
    tuples: frozenset[str]  # arrays of strings, kept as tuples
    drop_none: frozenset[str]  # optional fields whose default is not None


def _build_spec(cls: type[Payload]) -> _Spec:
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    spec = _FIELDS[cls]
    return _Spec(
        accepts={name: frozenset(accepted) | ({type(None)} if optional else set())
                 for name, accepted, optional, _ in spec},
        tuples=frozenset(name for name, _, _, is_tuple in spec if is_tuple),
        drop_none=frozenset(name for name, _, optional, _ in spec
                            if optional and defaults[name] is not None),
    )


# Decoded values have exact builtin types, so a set lookup replaces isinstance (and
# keeps bool out of int fields, bool being a subclass of int). One pass over the map
# checks names and types; the map itself becomes the keyword arguments.
_SPECS: dict[type[Payload], _Spec] = {cls: _build_spec(cls) for cls in _FIELDS}


def payload_from_dict(type_: str, version: int, data: Any) -> Payload:
    """Build a payload from a decoded map, checking field names and types.

    Fast path: a map whose names are all the class's goes through ``msgspec.convert``
    (types checked and the frozen dataclass built in C: 3.0 → 1.8 µs for a created
    event). It accepts a subset of what :func:`_checked` accepts — msgspec also checks
    inside containers, and refuses None for a field whose default is not None — and
    builds the same payload; anything it refuses goes through :func:`_checked`, which
    accepts it as before or raises today's error (tests/streams/test_codec.py holds
    the two paths equal on arbitrary maps).
    """
    cls = REGISTRY.get((type_, version))
    if cls is None:
        if type_ in TYPES:
            raise CodecError("unknown_version", f"unknown version {version} of {type_!r}")
        raise CodecError("unknown_type", f"unknown event type {type_!r}")
    if type(data) is not dict:
        raise CodecError("malformed", "payload is not a map")
    if data.keys() <= _SPECS[cls].accepts.keys():
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError:
            pass
    return _checked(cls, data)


def _checked(cls: type[Payload], data: dict[Any, Any]) -> Payload:
    """The payload of ``data`` checked field by field in Python (see payload_from_dict)."""
    type_ = cls.TYPE
    accepts, tuples, drop_none = _SPECS[cls]
    for name, value in data.items():
        exact = accepts.get(name)
        if exact is None:
            extra = sorted(str(n) for n in data if n not in accepts)
            raise CodecError("invalid", f"{type_}: unknown field {extra[0]!r}")
        if type(value) not in exact:
            raise CodecError("invalid", f"{type_}: field {name!r} has the wrong type")
    kwargs = data
    if tuples or drop_none:
        kwargs = dict(data)
        for name in tuples:
            value = kwargs.get(name)
            if value is not None:
                value = kwargs[name] = tuple(value)
                for item in value:
                    if type(item) is not str:
                        raise CodecError("invalid", f"{type_}: field {name!r} must hold strings")
        for name in drop_none:
            if name in kwargs and kwargs[name] is None:
                del kwargs[name]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise CodecError("invalid", f"{type_}: {exc}") from exc


def encode(envelope: Envelope) -> bytes:
    """Envelope → msgpack bytes."""
    doc: dict[str, Any] = {
        "f": WIRE_FORMAT,
        "i": envelope.id,
        "t": envelope.type,
        "v": envelope.version,
        "u": envelope.user,
        "ts": envelope.time,
        "d": payload_to_dict(envelope.payload),
    }
    if envelope.idempotency_key is not None:
        doc["k"] = envelope.idempotency_key
    if envelope.correlation is not None:
        doc["c"] = envelope.correlation
    if envelope.sealed is not None:
        doc["s"] = envelope.sealed
    if envelope.actor is not None:
        doc["a"] = envelope.actor
    try:
        return _packers()[0].pack(doc)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError("invalid", f"cannot encode {envelope.type}: {exc}") from exc


# msgspec's untyped MessagePack decoder gives the same plain values as msgpack's
# (str, bytes, int, float, bool, None, list, dict) in half the time (an event of the
# projector benchmark: 1.76 → 0.86 µs); the checks below do the validation. Map keys
# that are not strings, which msgpack's ``strict_map_key`` refused, fail those checks.
_ENTRY_DECODER = msgspec.msgpack.Decoder()


# Envelope's fields, set directly: its frozen __init__ goes through object.__setattr__
# for each (decode of a created event: 1.3 → 0.45 µs for this step). Every field is
# set, in this order, with values decode has checked; the assert keeps it in step.
_ENVELOPE_FIELDS = ("id", "user", "time", "payload", "idempotency_key", "correlation",
                    "sealed", "actor")
assert _ENVELOPE_FIELDS == tuple(f.name for f in dataclasses.fields(Envelope))
assert not hasattr(Envelope, "__post_init__")


def _envelope_builder() -> typing.Callable[..., Envelope]:
    set_id, set_user, set_time, set_payload, set_key, set_corr, set_sealed, set_actor = (
        Envelope.__dict__[name].__set__ for name in _ENVELOPE_FIELDS)
    new = object.__new__

    def build(event_id: str, user: str, ts: int, payload: Payload, key: str | None,
              corr: str | None, sealed: bytes | None, actor: str | None) -> Envelope:
        env = new(Envelope)
        set_id(env, event_id)
        set_user(env, user)
        set_time(env, ts)
        set_payload(env, payload)
        set_key(env, key)
        set_corr(env, corr)
        set_sealed(env, sealed)
        set_actor(env, actor)
        return env

    return build


_envelope = _envelope_builder()


# The envelope's keys and their msgpack types (PROTOCOL.md, "The entry"): required
# ones first. Any other key is refused: a reader never guesses at a field it does
# not know (a new envelope field is a new wire format ``f``).
_REQUIRED = (("i", str), ("t", str), ("v", int), ("u", str), ("ts", int), ("d", dict))
_OPTIONAL = (("k", str), ("c", str), ("s", bytes), ("a", str))
ENVELOPE_KEYS = frozenset(["f", *(name for name, _ in _REQUIRED + _OPTIONAL)])
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "a map", bytes: "bytes (bin)"}


def decode(raw: bytes) -> Envelope:
    """msgpack bytes → Envelope; raises CodecError with a reason."""
    try:
        doc = _ENTRY_DECODER.decode(raw)
    except Exception as exc:  # DecodeError, TypeError (not bytes), RecursionError...
        raise CodecError("malformed", f"not a msgpack event: {exc}") from exc
    if type(doc) is not dict:
        raise CodecError("malformed", "event is not a map")
    if doc.get("f") != WIRE_FORMAT:
        raise CodecError("unknown_version", f"unknown wire format {doc.get('f')!r} "
                         f"(this reader knows {WIRE_FORMAT})")
    try:
        event_id, type_, version = doc["i"], doc["t"], doc["v"]
        user, ts, data = doc["u"], doc["ts"], doc["d"]
    except KeyError as exc:
        raise CodecError("malformed", f"event lacks field {exc.args[0]!r}") from exc
    key, corr, sealed, actor = doc.get("k"), doc.get("c"), doc.get("s"), doc.get("a")
    if (
        type(event_id) is not str
        or type(type_) is not str
        or type(version) is not int
        or type(user) is not str
        or type(ts) is not int
        or (key is not None and type(key) is not str)
        or (corr is not None and type(corr) is not str)
        or (sealed is not None and type(sealed) is not bytes)
        or (actor is not None and type(actor) is not str)
        or not doc.keys() <= ENVELOPE_KEYS
    ):
        raise CodecError("malformed", _envelope_problem(doc))
    return _envelope(event_id, user, ts, payload_from_dict(type_, version, data),
                     key, corr, sealed, actor)


def _envelope_problem(doc: dict[Any, Any]) -> str:
    """What is wrong with an envelope map that failed decode's checks."""
    for name, kind in _REQUIRED + _OPTIONAL:
        value = doc.get(name)
        if (value is not None or name in ("i", "t", "v", "u", "ts")) and type(value) is not kind:
            return f"envelope field {name!r} must be {_TYPE_NAMES[kind]}"
    extra = sorted(str(name) for name in doc if name not in ENVELOPE_KEYS)
    return f"unknown envelope field {extra[0]!r}" if extra else "malformed envelope"


def pack_value(value: Any) -> bytes:
    """msgpack of a plain value (str, bytes, int, float, bool, None, list, map).

    For derived state and Lua arguments, not for log entries. Strings and bytes both
    use the raw str type: Redis's Lua ``cmsgpack`` has no bin type. Raises CodecError.
    """
    try:
        return _packers()[1].pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError("invalid", f"cannot pack value: {exc}") from exc


def unpack_value(raw: bytes) -> Any:
    """Inverse of :func:`pack_value` (strings come back as str); raises CodecError."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError("malformed", f"not a packed value: {exc}") from exc


def pack_records(records: Iterable[Any]) -> bytes:
    """Plain values packed one after another, bytes kept as bytes (msgpack bin type),
    for archive segments and snapshots; :func:`unpack_records` reads them back.
    Raises CodecError."""
    packer = _packers()[0]
    try:
        return b"".join(packer.pack(record) for record in records)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError("invalid", f"cannot pack record: {exc}") from exc


def unpack_records(data: bytes) -> Iterator[Any]:
    """The records of :func:`pack_records`, in order (strings as str, bytes as bytes);
    raises CodecError when ``data`` is not such a sequence."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0)
    unpacker.feed(data)
    try:
        yield from unpacker
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError("malformed", f"not a sequence of packed records: {exc}") from exc


def pack_binary(value: Any) -> bytes:
    """msgpack of one plain value with bytes kept as bytes (bin type), for derived
    values that only Python reads back (Lua's cmsgpack has no bin type: arguments a
    script unpacks go through :func:`pack_value`). Raises CodecError."""
    return pack_records((value,))


def unpack_binary(raw: bytes) -> Any:
    """Inverse of :func:`pack_binary`; also reads :func:`pack_value`'s output (its
    strings as str). Raises CodecError."""
    values = list(unpack_records(raw))
    if len(values) != 1:
        raise CodecError("malformed", f"expected one packed value, found {len(values)}")
    return values[0]
