"""Versioned definitions (templates, workflows): the projection of a reserved user's
partition (``~templates``, ``~workflows``), cached per process.

A version never changes once registered, so a definition read once is kept (at most
:data:`CACHE_MAX` versions per process); which version is the latest is read from
Redis every time (one HGET), so a new version is used by the next read. Reads go
through the partition's view pointer like every projection read
(consumers/projection/views.py), so a ``herald replay`` switch is followed.

Failure modes: Redis errors propagate; a stored definition that does not unpack
raises CodecError (never written by Herald).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herald.consumers.errors import ConsumerError
from herald.consumers.projection.base import Write
from herald.consumers.projection.views import Views
from herald.streams import codec
from herald.streams.connection import text
from herald.streams.events import Appended, Envelope, Payload
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.producer import Producer
from herald.streams.settings import Settings

CACHE_MAX = 2048
LIST_MAX = 1000


class VersionTaken(ConsumerError):
    """Raised when another registration appended the same version first."""


@dataclass(frozen=True, slots=True)
class Registered:
    """What registering a definition did: the version it is, and whether it was new
    (``appended``: its log entry; None when equal to the latest, nothing appended)."""

    id: str
    version: int
    created: bool
    appended: Appended | None = None
    envelope: Envelope | None = None  # what was appended


async def register_version(store: VersionedStore, producer: Producer, user: str, id_: str,
                           definition: dict[str, Any], event: Callable[[int], Payload],
                           idempotency: str) -> Registered:
    """Append version latest + 1 of ``id_`` as ``event(version)`` of the reserved
    ``user`` under the idempotency key ``<idempotency>:<id>:<version>`` — unless the
    definition equals the latest (kept, nothing appended). Two racing registrations
    yield one: the second gets :class:`VersionTaken`."""
    current = await store.get(id_)
    if current is not None and current.definition == definition:
        return Registered(id_, current.version, False)
    version = (current.latest if current else 0) + 1
    envelope = producer.envelope(user, event(version),
                                 idempotency_key=f"{idempotency}:{id_}:{version}")
    appended = await producer.publish(envelope)
    if appended.duplicate:
        raise VersionTaken(f"version {version} of {id_!r} was registered by another request "
                           "just now; read it and register again if yours differs")
    return Registered(id_, version, True, appended, envelope)


def version_writes(record: str, index: str, id_: str, version: int,
                   definition: dict[str, Any], time_ms: int) -> list[Write]:
    """The projection of one registered version: ``v<n>`` (packed) and ``ts<n>`` written
    once, ``latest`` = n, the id in the index — what :class:`VersionedStore` reads."""
    n = str(version)
    return [("call", "HSET", record, f"v{n}", codec.pack_value(definition), f"ts{n}",
             str(time_ms), "latest", n),
            ("call", "ZADD", index, "0", id_)]


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a definition."""

    id: str
    version: int
    definition: dict[str, Any]
    registered_at: int  # ms
    latest: int


class VersionedStore:
    """Definition reads of one reserved user's partition of one prefix; one per process.

    ``record(keys, partition, id, ns)`` names a definition's hash (``latest``,
    ``v<n>``, ``ts<n>``), ``index(keys, partition, ns)`` the sorted set of the ids."""

    def __init__(self, redis: Any, settings: Settings, user: str,
                 record: Callable[[Keys, int, str, str], str],
                 index: Callable[[Keys, int, str], str]) -> None:
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.views = Views(redis, settings)
        self.partition = partition_for(user, settings.partitions)
        self._record, self._index = record, index
        self._cache: OrderedDict[tuple[str, int], tuple[dict[str, Any], int]] = OrderedDict()

    async def get(self, id_: str, version: int | None = None) -> Version | None:
        """Version ``version`` (default: the latest) of a definition; None when unknown."""
        p, k = self.partition, self.keys
        wanted = version
        cached = self._cache.get((id_, version)) if version is not None else None

        def build(pipe: Any, ns: str) -> None:
            pipe.hget(self._record(k, p, id_, ns), "latest")
            if version is not None and cached is None:
                pipe.hmget(self._record(k, p, id_, ns), f"v{version}", f"ts{version}")

        replies = await self.views.snapshot(p, build)
        if replies[0] is None:
            return None
        latest = int(text(replies[0]))
        wanted = latest if version is None else version
        if wanted > latest or wanted < 1:
            return None
        found = cached or self._cache.get((id_, wanted))
        if found is None:
            raw = replies[1] if version is not None else await self._version(id_, wanted)
            if raw is None or raw[0] is None:
                return None
            found = (codec.unpack_value(raw[0]), int(text(raw[1])))
            self._cache[(id_, wanted)] = found
            if len(self._cache) > CACHE_MAX:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end((id_, wanted))
        return Version(id_, wanted, found[0], found[1], latest)

    async def _version(self, id_: str, version: int) -> list[Any] | None:
        p, k = self.partition, self.keys
        [raw] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hmget(self._record(k, p, id_, ns), f"v{version}",
                                           f"ts{version}"))
        return list(raw)

    async def latest(self, id_: str) -> int | None:
        """The latest version's number; None when the id is unknown."""
        p, k = self.partition, self.keys
        [raw] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hget(self._record(k, p, id_, ns), "latest"))
        return None if raw is None else int(text(raw))

    async def list(self, limit: int = LIST_MAX) -> list[dict[str, Any]]:
        """``[{"id", "latest"}]`` in id order (at most ``limit``)."""
        p, k = self.partition, self.keys
        [ids] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.zrange(self._index(k, p, ns), 0, limit - 1))
        names = [text(i) for i in ids]
        if not names:
            return []

        def build(pipe: Any, ns: str) -> None:
            for name in names:
                pipe.hget(self._record(k, p, name, ns), "latest")

        latest = await self.views.snapshot(p, build)
        return [{"id": name, "latest": int(text(v))} for name, v in zip(names, latest,
                                                                         strict=True)
                if v is not None]
