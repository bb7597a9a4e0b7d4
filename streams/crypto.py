"""AES-GCM for personal data: per-user data keys, master keys that wrap them, sealed blobs.

Envelope encryption, one scheme for the whole project:

- A **data key** (:class:`DataKey`, 256 bits, random) per user encrypts that user's
  personal fields (streams/sealing.py). It lives only in the key store
  (streams/keystore.py) — never in the log, a snapshot or an archive segment — so
  deleting it makes every copy of the user's content unreadable (crypto-shredding:
  ``herald erase``).
- **Master keys** (``HERALD_SECRET_KEYS``, ``id:base64`` of 32 bytes, comma-separated,
  the first one current) wrap the data keys at rest. Without master keys data keys
  are stored unwrapped (development); with them a dump of Redis holds no usable key.
  Rotation: put the new key first, keep the old ones until ``herald secrets rotate``
  has re-wrapped every data key.

Blob layouts (the first byte is the layout version):

- sealed fields: ``01 | data key id (8) | nonce (12) | AES-GCM(ciphertext + tag)``,
  associated data = the user id, so a blob cannot be moved to another user;
- wrapped data key: ``00 | id (8) | key (32)`` (no master key) or
  ``01 | id (8) | master id length (1) | master id | nonce (12) | AES-GCM(key)``,
  associated data = the user id.

Failure modes: :class:`CryptoError` for a malformed blob, a wrong key, a tampered
ciphertext or an unknown master key id; never a partial result.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from herald.streams.errors import HeraldError, SettingsError

KEY_BYTES = 32
ID_BYTES = 8
NONCE_BYTES = 12
SEALED_V1 = 1
_MASTER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class CryptoError(HeraldError):
    """Raised when a blob cannot be opened: malformed, wrong key, tampered, unknown id."""


@dataclass(frozen=True, slots=True)
class DataKey:
    """One user's data key: its id (8 bytes, named in every blob it seals) and cipher."""

    id: bytes
    key: bytes = field(repr=False)
    aead: AESGCM = field(repr=False, compare=False)

    @classmethod
    def create(cls) -> DataKey:
        return cls.from_bytes(os.urandom(ID_BYTES), os.urandom(KEY_BYTES))

    @classmethod
    def from_bytes(cls, key_id: bytes, key: bytes) -> DataKey:
        if len(key_id) != ID_BYTES or len(key) != KEY_BYTES:
            raise CryptoError("a data key is 8 bytes of id and 32 bytes of key")
        return cls(key_id, key, AESGCM(key))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed under this key, bound to ``aad`` (layout v1)."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes((SEALED_V1,)) + self.id + nonce + self.aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext of a blob this key sealed; CryptoError otherwise."""
        if sealed_key_id(blob) != self.id:
            raise CryptoError("the blob was sealed under another data key")
        start = 1 + ID_BYTES
        nonce = blob[start:start + NONCE_BYTES]
        try:
            return self.aead.decrypt(nonce, blob[start + NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise CryptoError("the sealed blob does not open (tampered, or another user's)") \
                from exc


def sealed_key_id(blob: bytes) -> bytes:
    """The id of the data key a sealed blob names; CryptoError when malformed."""
    if len(blob) < 1 + ID_BYTES + NONCE_BYTES + 16 or blob[0] != SEALED_V1:
        raise CryptoError("not a sealed blob (layout 1)")
    return blob[1:1 + ID_BYTES]


@dataclass(frozen=True, slots=True)
class MasterKeys:
    """The master keys of ``HERALD_SECRET_KEYS``: the first wraps, every one unwraps."""

    keys: tuple[tuple[str, AESGCM], ...] = ()

    @classmethod
    def parse(cls, text: str, variable: str = "HERALD_SECRET_KEYS") -> MasterKeys:
        """``"k2:<base64 of 32 bytes>,k1:<...>"``; SettingsError naming ``variable``."""
        out: list[tuple[str, AESGCM]] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key_id, sep, encoded = part.partition(":")
            if not sep or not _MASTER_ID.fullmatch(key_id):
                raise SettingsError(f"{variable}: each key is id:base64 (id of 1-32 of "
                                    "A-Z a-z 0-9 _ . -)")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise SettingsError(f"{variable}: key {key_id!r} is not base64") from exc
            if len(raw) != KEY_BYTES:
                raise SettingsError(f"{variable}: key {key_id!r} must be 32 bytes "
                                    f"(base64 of 32 random bytes), got {len(raw)}")
            if any(k == key_id for k, _ in out):
                raise SettingsError(f"{variable}: key id {key_id!r} is given twice")
            out.append((key_id, AESGCM(raw)))
        return cls(tuple(out))

    @property
    def current(self) -> str | None:
        """The id that wraps new data keys (None: data keys are stored unwrapped)."""
        return self.keys[0][0] if self.keys else None

    def wrap(self, key: DataKey, user: str) -> bytes:
        """The stored form of ``key`` (see the module docstring)."""
        if not self.keys:
            return b"\x00" + key.id + key.key
        master_id, aead = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        name = master_id.encode()
        return (b"\x01" + key.id + bytes((len(name),)) + name + nonce
                + aead.encrypt(nonce, key.key, user.encode()))

    def unwrap(self, stored: bytes, user: str) -> DataKey:
        """The data key of a stored form; CryptoError when it cannot be unwrapped."""
        if stored[:1] == b"\x00" and len(stored) == 1 + ID_BYTES + KEY_BYTES:
            return DataKey.from_bytes(stored[1:1 + ID_BYTES], stored[1 + ID_BYTES:])
        if stored[:1] != b"\x01" or len(stored) < 2 + ID_BYTES:
            raise CryptoError("not a stored data key")
        key_id = stored[1:1 + ID_BYTES]
        size = stored[1 + ID_BYTES]
        start = 2 + ID_BYTES
        master_id = stored[start:start + size].decode(errors="replace")
        aead = dict(self.keys).get(master_id)
        if aead is None:
            raise CryptoError(f"data key wrapped by master key {master_id!r}, which "
                              "HERALD_SECRET_KEYS does not hold")
        nonce = stored[start + size:start + size + NONCE_BYTES]
        try:
            raw = aead.decrypt(nonce, stored[start + size + NONCE_BYTES:], user.encode())
        except InvalidTag as exc:
            raise CryptoError(f"data key of {user!r} does not unwrap with {master_id!r}") \
                from exc
        return DataKey.from_bytes(key_id, raw)

    def wrapped_by(self, stored: bytes) -> str | None:
        """The master key id a stored data key is wrapped by (None: unwrapped)."""
        if stored[:1] != b"\x01" or len(stored) < 2 + ID_BYTES:
            return None
        size = stored[1 + ID_BYTES]
        return stored[2 + ID_BYTES:2 + ID_BYTES + size].decode(errors="replace")
