"""Sealing personal fields: they enter the log encrypted under the user's data key.

Which fields are personal is declared here, per payload class (:data:`SEALED`):
a notification's title, body, data and recipient addresses, and a profile's
addresses and webhook secret. :func:`seal` moves them, packed, into the envelope's
``sealed`` blob (streams/crypto.py: AES-GCM, bound to the user id) and blanks them in
the payload; :func:`opened` puts them back. Everything else (ids, type, category,
channels, times, read state) stays in clear: it is what projections and routing
need, and it is not content.

Projections copy the blob as it is (the projector never needs the plaintext, so
replay is byte-for-byte what live built); readers open it with :func:`open_blob`
(the inbox, delivery, the scheduler's digests). Erasing the user's data key
(``herald erase``) makes every copy — in Redis, snapshots and archive segments —
unreadable.

Failure modes: :func:`opened` and :func:`open_blob` give None when the key is gone
(erased); a blob that does not open with the key it names raises CryptoError.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from herald.streams import codec
from herald.streams.crypto import CryptoError, DataKey, sealed_key_id
from herald.streams.events import (
    REGISTRY,
    BusinessEventReceived,
    ContactChanged,
    DeviceRegistered,
    Envelope,
    NotificationContent,
    Payload,
    ProfileChanged,
    WorkflowStepDecided,
    WorkflowTriggered,
)
from herald.streams.keystore import KeyStore

_CONTENT = ("title", "body", "data", "recipients", "variants")
_PROFILE = ("phone", "email", "wechat_openid", "webhook_url", "webhook_secret",
            "wecom_userid")
# A contact's value and a device's token are as personal as the profile's addresses.
# (A profile's locale is not sealed: it is a setting, not an address.)
# A workflow's trigger data, a business event's data and the inputs a run's condition
# read are content like a notification's data.
_OTHERS: dict[type[Payload], tuple[str, ...]] = {ContactChanged: ("value",),
                                                 DeviceRegistered: ("token",),
                                                 WorkflowTriggered: ("data",),
                                                 WorkflowStepDecided: ("data",),
                                                 BusinessEventReceived: ("data",)}

SEALED: dict[type[Payload], tuple[str, ...]] = {
    **{cls: _CONTENT if issubclass(cls, NotificationContent) else _PROFILE
       for cls in REGISTRY.values() if issubclass(cls, NotificationContent | ProfileChanged)},
    **_OTHERS,
}
# Credentials: sealed even with HERALD_SEAL=false (which keeps content in clear), so no
# secret that enters through the API is ever at rest in clear (SECURITY.md).
SECRETS: dict[type[Payload], tuple[str, ...]] = {
    cls: ("webhook_secret",) for cls in REGISTRY.values() if issubclass(cls, ProfileChanged)
}


def _blank(cls: type[Payload], names: tuple[str, ...]) -> dict[str, Any]:
    """The value each sealed field of ``cls`` has in a sealed payload."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in names:
            out[f.name] = "" if f.name in ("title", "body", "token") else {} \
                if f.name in ("data", "recipients") else None
    return out


_BLANKS: dict[tuple[type[Payload], tuple[str, ...]], dict[str, Any]] = {
    (cls, names): _blank(cls, names) for table in (SEALED, SECRETS)
    for cls, names in table.items()}


def sealable(payload: Payload) -> bool:
    """Whether ``payload`` has personal fields to seal (a contact's removal has none,
    and a locale is not personal)."""
    if type(payload) is ContactChanged:
        return payload.value is not None and payload.kind != "locale"  # type: ignore[attr-defined]
    return type(payload) in SEALED


def has_secret(payload: Payload) -> bool:
    """Whether ``payload`` carries a credential (sealed whatever HERALD_SEAL says)."""
    return any(getattr(payload, name) for name in SECRETS.get(type(payload), ()))


def seal(env: Envelope, key: DataKey, *, only_secrets: bool = False) -> Envelope:
    """``env`` with its payload's personal fields (``only_secrets``: its credentials)
    sealed under ``key`` (a copy)."""
    cls = type(env.payload)
    names = SECRETS[cls] if only_secrets else SEALED[cls]
    fields = {name: value for name in names
              if (value := getattr(env.payload, name)) not in (None, "", {})}
    blob = key.seal(codec.pack_value(fields), env.user.encode())
    blanks = _BLANKS[(cls, names)]
    return dataclasses.replace(env, payload=dataclasses.replace(env.payload, **blanks),
                               sealed=blob)


def open_with(blob: bytes, key: DataKey, user: str) -> dict[str, Any]:
    """The fields a blob holds (CryptoError if it does not open with ``key``)."""
    fields = codec.unpack_value(key.open(blob, user.encode()))
    if not isinstance(fields, dict):
        raise CryptoError("a sealed blob holds a map of fields")
    return fields


def opened_with(env: Envelope, key: DataKey) -> Envelope:
    """``env`` with its sealed fields back in its payload (a copy; as is when unsealed)."""
    if env.sealed is None:
        return env
    fields = open_with(env.sealed, key, env.user)
    return dataclasses.replace(env, payload=dataclasses.replace(env.payload, **fields),
                               sealed=None)


async def open_blob(keys: KeyStore, user: str, blob: bytes) -> dict[str, Any] | None:
    """The fields of a projected blob of ``user``; None when the user's key is gone."""
    key = await keys.for_reading(user, sealed_key_id(blob))
    return None if key is None else open_with(blob, key, user)


async def opened(keys: KeyStore, env: Envelope) -> Envelope | None:
    """``env`` opened with its user's key from ``keys``; None when that key is gone."""
    if env.sealed is None:
        return env
    key = await keys.for_reading(env.user, sealed_key_id(env.sealed))
    return None if key is None else opened_with(env, key)
