"""Idempotency records: which idempotency keys were appended, and where.

One hash per partition and time bucket of the dedupe window
(``Keys.idempotency``): field = the idempotency key, value = ``event_id position``
of the first append under it, or ``event_id position digest`` when the append named
its payload's digest (:func:`payload_digest`, :func:`request_digest`): a later append
under the key with another digest is a conflict, refused (``Appended.conflict``; the
API answers 409 with the first event's id), while the same digest answers the first
append as before. Scripts that append under a key (the producer's
append, the scheduler's fire) read the current and previous bucket with one HMGET
each and write every new record with one HSET per call, instead of a GET and a
``SET … PX`` per event; the shared Lua is streams/lua/idempotency.lua.

The server's clock picks the bucket: callers pass the four buckets around their
own clock's (b-2 .. b+1) and the script uses the ones around the server's, so two
publishers with skewed clocks still consult the same hashes. A call whose clock (or
delay) is off by more than a window fails with ``BUCKET <s>`` before writing
anything; :func:`server_bucket` reads s and the caller sends the call again with
the keys around it. A record answers from its first append for at least the window
(``HERALD_DEDUPE_WINDOW``) and less than twice it; a bucket expires when no lookup
can reach it any more. Buckets are named with their span, so changing the window
starts a fresh set of records (the old ones expire on their own).

:meth:`IdempotencyRecords.found` (the delivery workers' "outcome recorded" check)
reads with the caller's clock, ±1 bucket: a clock more than a window off can miss a
record, which costs a repeated send (delivery is at least once), never a lost one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.exceptions import ResponseError

from herald.streams.codec import payload_to_dict
from herald.streams.connection import text
from herald.streams.events import Envelope
from herald.streams.ids import now_ms
from herald.streams.keys import Keys
from herald.streams.settings import Settings


@dataclass(frozen=True, slots=True)
class IdempotencyRecords:
    """Bucket keys of one prefix and window; ``span_ms`` is the window in ms (≥ 1)."""

    keys: Keys
    span_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> IdempotencyRecords:
        return cls(Keys(settings.prefix), max(1, int(settings.dedupe_window_s * 1000)))

    def script_keys(
        self, partition: int, at_ms: int | None = None, *, bucket: int | None = None
    ) -> tuple[list[str], int]:
        """The four bucket keys b-2 .. b+1 a script takes, and b: the bucket of
        ``at_ms`` (default now), or ``bucket`` as the server named it."""
        b = bucket if bucket is not None else (now_ms() if at_ms is None else at_ms) // self.span_ms
        return [self.keys.idempotency(partition, self.span_ms, b + d) for d in (-2, -1, 0, 1)], b

    async def found(self, redis: Any, partition: int, fields: Sequence[str]) -> list[bool]:
        """Whether each idempotency key has a record (the caller's clock, ±1 bucket)."""
        if not fields:
            return []
        buckets = self.script_keys(partition)[0][1:]
        async with redis.pipeline(transaction=False) as pipe:
            for key in buckets:
                pipe.hmget(key, list(fields))
            replies = await pipe.execute()
        return [any(reply[i] is not None for reply in replies) for i in range(len(fields))]


    async def first(self, redis: Any, partitions: Sequence[int], field: str
                    ) -> tuple[int, str, str] | None:
        """``(partition, event id, position)`` of the first append under the idempotency
        key ``field`` in any of ``partitions`` (the caller's clock, ±1 bucket), or None."""
        if not partitions:
            return None
        async with redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                for key in self.script_keys(p)[0][1:]:
                    pipe.hget(key, field)
            replies = await pipe.execute()
        for i, reply in enumerate(replies):
            if reply is not None:
                event_id, position, _ = split_record(reply)
                return partitions[i // 3], event_id, position
        return None


def _canonical(value: Any) -> Any:
    """``value`` with every map's keys sorted (so equal content packs to equal bytes)."""
    if isinstance(value, dict):
        return [[str(k), _canonical(value[k])] for k in sorted(value, key=str)]
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def request_digest(value: Any) -> str:
    """The digest of any msgpack-able value (an HTTP request item): 32 hex digits of
    BLAKE2b-128 over its canonical msgpack (map keys sorted)."""
    packed = msgpack.packb(_canonical(value), use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=16).hexdigest()


def payload_digest(envelope: Envelope) -> str:
    """The digest of what an event says: its type, user and payload in clear (not its
    id, time or seal, which differ between two attempts of one publish)."""
    return request_digest([envelope.type, envelope.user, payload_to_dict(envelope.payload)])


def split_record(record: Any) -> tuple[str, str, str]:
    """``(event id, position, digest or "")`` of a stored record."""
    parts = text(record).split(" ")
    return parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""


def server_bucket(error: BaseException) -> int | None:
    """The server's bucket from a script's ``BUCKET <s>`` failure, else None."""
    if not isinstance(error, ResponseError):
        return None
    head, _, rest = str(error).partition(" ")
    if head != "BUCKET":
        return None
    number = rest.split(" ", 1)[0]
    return int(number) if number.isdigit() else None
