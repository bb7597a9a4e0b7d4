"""Sealing personal fields: keys, master keys, blobs, the key store, erasure by key."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.streams import codec, sealing
from herald.streams.crypto import CryptoError, DataKey, MasterKeys, sealed_key_id
from herald.streams.errors import SettingsError
from herald.streams.events import Envelope, NotificationCreated, NotificationRead, ProfileChanged
from herald.streams.keystore import KeyStore
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings

MASTER = base64.b64encode(os.urandom(32)).decode()
OTHER = base64.b64encode(os.urandom(32)).decode()


def _env(payload: Any, user: str = "alice") -> Envelope:
    return Envelope(id="01HZX3J4K5M6N7P8Q9R0S1T2V3", user=user, time=5, payload=payload)


_VALUES = st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)


@given(title=st.text(min_size=1, max_size=50), body=st.text(max_size=50),
       data=st.dictionaries(st.text(max_size=5), _VALUES, max_size=4))
def test_seal_then_open_gives_the_event_back(title: str, body: str, data: dict) -> None:
    env = _env(NotificationCreated(title=title, body=body, data=data,
                                   recipients={"sms": "+8613800000000"}, category="orders"))
    key = DataKey.create()
    sealed = sealing.seal(env, key)
    assert sealed.payload.title == "" and sealed.payload.data == {}
    assert sealed.payload.recipients == {} and sealed.payload.category == "orders"
    assert sealed_key_id(sealed.sealed or b"") == key.id
    assert codec.decode(codec.encode(sealed)) == sealed  # the wire carries the blob
    assert sealing.opened_with(sealed, key) == env


def test_a_blob_opens_only_for_its_user_and_key() -> None:
    env = _env(ProfileChanged(phone="+8613800000000", webhook_secret="whsec_x"))
    key = DataKey.create()
    sealed = sealing.seal(env, key)
    assert sealed.payload.phone is None and sealed.payload.webhook_secret is None
    assert b"8613800000000" not in codec.encode(sealed) and b"whsec_x" not in codec.encode(sealed)
    moved = Envelope(id=sealed.id, user="mallory", time=5, payload=sealed.payload,
                     sealed=sealed.sealed)
    with pytest.raises(CryptoError):
        sealing.opened_with(moved, key)  # bound to the user id
    with pytest.raises(CryptoError):
        sealing.opened_with(sealed, DataKey.create())
    blob = bytearray(sealed.sealed or b"")
    blob[-1] ^= 1
    with pytest.raises(CryptoError):
        sealing.open_with(bytes(blob), key, "alice")
    assert not sealing.sealable(NotificationRead(notification_id=env.id))


def test_master_keys_parse_wrap_and_rotate() -> None:
    old = MasterKeys.parse(f"k1:{MASTER}")
    both = MasterKeys.parse(f"k2:{OTHER}, k1:{MASTER}")
    key = DataKey.create()
    stored = old.wrap(key, "alice")
    assert key.key not in stored and old.wrapped_by(stored) == "k1"
    assert both.unwrap(stored, "alice") == key  # an old master still unwraps
    assert both.wrapped_by(both.wrap(key, "alice")) == "k2"  # the first one wraps
    with pytest.raises(CryptoError):
        old.unwrap(stored, "bob")
    with pytest.raises(CryptoError, match="k2"):
        old.unwrap(both.wrap(key, "alice"), "alice")
    plain = MasterKeys().wrap(key, "alice")
    assert MasterKeys().unwrap(plain, "alice") == key and MasterKeys().wrapped_by(plain) is None
    for bad in ("k1", f"k1:{MASTER[:-4]}", "bad id:" + MASTER, f"k1:{MASTER},k1:{OTHER}", "k1:!!"):
        with pytest.raises(SettingsError, match="HERALD_SECRET_KEYS"):
            MasterKeys.parse(bad)
    with pytest.raises(SettingsError, match="HERALD_SECRET_KEYS"):
        Settings.from_env({"HERALD_SECRET_KEYS": "nope"})


async def test_the_key_store_creates_once_reads_and_erases(redis: Any, settings: Settings) -> None:
    wrapped = settings.replace(secret_keys=f"k1:{MASTER}")
    first, second = KeyStore(redis, wrapped), KeyStore(redis, wrapped)
    a = (await first.for_writing(["alice"]))["alice"]
    b = (await second.for_writing(["alice", "bob"]))
    assert b["alice"] == a and b["bob"] != a  # racing writers end with the one key
    stored = await redis.hget(first.keys.data_keys(partition_for("alice", settings.partitions)),
                              "alice")
    assert a.key not in stored  # wrapped at rest
    assert await second.for_reading("alice", a.id) == a
    assert await second.current("carol") is None  # reading never creates
    assert await first.erase("alice") and not await first.erase("alice")
    second.forget("alice")
    assert await second.for_reading("alice", a.id) is None
    fresh = (await first.for_writing(["alice"]))["alice"]
    assert fresh.id != a.id  # a new life
    assert await second.for_reading("alice", a.id) is None  # the old content stays unreadable


async def test_rewrap_moves_every_key_to_the_current_master(redis: Any, settings: Settings) -> None:
    old = KeyStore(redis, settings.replace(secret_keys=f"k1:{MASTER}"))
    keys = await old.for_writing([f"u{i}" for i in range(20)])
    rotated = KeyStore(redis, settings.replace(secret_keys=f"k2:{OTHER},k1:{MASTER}"))
    total = sum([await rotated.rewrap(p) for p in range(settings.partitions)])
    assert total == 20
    assert sum([await rotated.rewrap(p) for p in range(settings.partitions)]) == 0
    only_new = KeyStore(redis, settings.replace(secret_keys=f"k2:{OTHER}"))
    for user, key in keys.items():
        assert await only_new.for_reading(user, key.id) == key
