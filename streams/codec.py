"""The msgpack codec: the only module that knows the log's wire format.

Wire format (format version 1): a msgpack map with short keys
``{"f": 1, "i": id, "t": type, "v": version, "u": user, "ts": ms, "k": idem key,
"c": correlation, "d": {payload fields}}``. None-valued payload fields are left
out. Strings are UTF-8 and round-trip exactly.

Every failure raises :class:`CodecError` (``from`` the original error) with a
``reason``: ``malformed`` (not msgpack / wrong shape), ``unknown_type``,
``unknown_version`` or ``invalid`` (a field of the wrong type) — consumers put the
reason on the dead letter.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from typing import Any

import msgpack

from streams.errors import CodecError
from streams.events import REGISTRY, TYPES, Envelope, Payload

WIRE_FORMAT = 1
ENTRY_FIELD = b"e"  # the single field of every stream entry


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
    for cls, spec in _FIELDS.items()
}


def payload_to_dict(payload: Payload) -> dict[str, Any]:
    """The payload's fields as a plain map (None values left out; tuples stay tuples,
    which msgpack and JSON write as arrays)."""
    names, getter = _GETTERS[type(payload)]
    if len(names) == 1:
        value = getter(payload)
        return {} if value is None else {names[0]: value}
    values = getter(payload)
    return {name: value for name, value in zip(names, values, strict=True) if value is not None}


def payload_from_dict(type_: str, version: int, data: Any) -> Payload:
    """Build a payload from a map, checking field names and types."""
    cls = REGISTRY.get((type_, version))
    if cls is None:
        if type_ in TYPES:
            raise CodecError("unknown_version", f"unknown version {version} of {type_!r}")
        raise CodecError("unknown_type", f"unknown event type {type_!r}")
    if not isinstance(data, dict):
        raise CodecError("malformed", "payload is not a map")
    kwargs: dict[str, Any] = {}
    for name, accepted, optional, is_tuple in _FIELDS[cls]:
        if name not in data:
            continue
        value = data[name]
        if value is None and optional:
            continue
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise CodecError("invalid", f"{type_}: field {name!r} has the wrong type")
        if is_tuple:
            items = tuple(typing.cast("list[Any]", value))
            if not all(isinstance(item, str) for item in items):
                raise CodecError("invalid", f"{type_}: field {name!r} must hold strings")
            value = items
        kwargs[name] = value
    extra = set(data) - {f[0] for f in _FIELDS[cls]}
    if extra:
        raise CodecError("invalid", f"{type_}: unknown field {sorted(extra)[0]!r}")
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
    try:
        return msgpack.packb(doc, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError("invalid", f"cannot encode {envelope.type}: {exc}") from exc


def decode(raw: bytes) -> Envelope:
    """msgpack bytes → Envelope; raises CodecError with a reason."""
    try:
        doc = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError("malformed", f"not a msgpack event: {exc}") from exc
    if not isinstance(doc, dict):
        raise CodecError("malformed", "event is not a map")
    if doc.get("f") != WIRE_FORMAT:
        raise CodecError("unknown_version", f"unknown wire format {doc.get('f')!r}")
    try:
        event_id, type_, version = doc["i"], doc["t"], doc["v"]
        user, ts = doc["u"], doc["ts"]
    except KeyError as exc:
        raise CodecError("malformed", f"event lacks field {exc.args[0]!r}") from exc
    if not (
        isinstance(event_id, str)
        and isinstance(type_, str)
        and isinstance(version, int)
        and isinstance(user, str)
        and isinstance(ts, int)
    ):
        raise CodecError("malformed", "envelope field of the wrong type")
    payload = payload_from_dict(type_, version, doc.get("d", {}))
    key, corr = doc.get("k"), doc.get("c")
    if not isinstance(key, str | None) or not isinstance(corr, str | None):
        raise CodecError("malformed", "envelope field of the wrong type")
    return Envelope(
        id=event_id, user=user, time=ts, payload=payload, idempotency_key=key, correlation=corr
    )


def pack_value(value: Any) -> bytes:
    """msgpack of a plain value (str, bytes, int, float, bool, None, list, map).

    For derived state and Lua arguments, not for log entries. Strings and bytes both
    use the raw str type: Redis's Lua ``cmsgpack`` has no bin type. Raises CodecError.
    """
    try:
        return msgpack.packb(value, use_bin_type=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError("invalid", f"cannot pack value: {exc}") from exc


def unpack_value(raw: bytes) -> Any:
    """Inverse of :func:`pack_value` (strings come back as str); raises CodecError."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError("malformed", f"not a packed value: {exc}") from exc
