"""The key store: each user's data key, in Redis, created on first use, deleted on erasure.

Layout: one hash per partition, ``Keys.data_keys(p)``, user → the stored data key
(wrapped by the current master key when ``HERALD_SECRET_KEYS`` is set:
streams/crypto.py). It is live state, not a projection: never derived from the log,
never in a snapshot or an archive segment, so :meth:`KeyStore.erase` makes every
sealed copy of a user's content unreadable, wherever it lies.

Creation races are settled by ``HSETNX``: every writer ends with the one key that
won. Keys are cached per process for :data:`CACHE_S` (at most :data:`CACHE_MAX`
users), so a process may seal or open with a key for up to that long after it was
erased; readers then see content the erasure has already removed from the inbox
(the ``user.erased`` event), and an event sealed by such a writer belongs to the
erased life (documented limit of crypto-shredding with caches).

Failure modes: Redis errors propagate; a stored key that does not unwrap (a master
key missing from ``HERALD_SECRET_KEYS``) raises :class:`~herald.streams.crypto.CryptoError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from herald.streams.crypto import DataKey, MasterKeys
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.scripts import Lua
from herald.streams.settings import Settings

CACHE_S = 10.0
CACHE_MAX = 100_000


class KeyStore:
    """Data keys of one prefix; one per process and client (async or sync client)."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.partitions = settings.partitions
        self.masters = MasterKeys.parse(settings.secret_keys)
        self._cache: dict[str, tuple[DataKey, float]] = {}
        self._swap = Lua(__file__, "keystore_swap")

    def _hash(self, user: str) -> str:
        return self.keys.data_keys(partition_for(user, self.partitions))

    def _cached(self, user: str) -> DataKey | None:
        hit = self._cache.get(user)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def _remember(self, user: str, key: DataKey) -> DataKey:
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[user] = (key, time.monotonic() + CACHE_S)
        return key

    def forget(self, user: str) -> None:
        """Drop ``user``'s cached key (this process erased it)."""
        self._cache.pop(user, None)

    # ------------------------------------------------------------------ writing
    async def for_writing(self, users: Iterable[str]) -> dict[str, DataKey]:
        """The current data key of each user, created where there is none."""
        out = {u: k for u in set(users) if (k := self._cached(u)) is not None}
        missing = [u for u in set(users) if u not in out]
        if not missing:
            return out
        fresh = {u: DataKey.create() for u in missing}
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in missing:
                pipe.hsetnx(self._hash(user), user, self.masters.wrap(fresh[user], user))
                pipe.hget(self._hash(user), user)
            replies = await pipe.execute()
        for i, user in enumerate(missing):
            out[user] = self._remember(user, self.masters.unwrap(replies[2 * i + 1], user))
        return out

    def for_writing_sync(self, users: Iterable[str]) -> dict[str, DataKey]:
        """:meth:`for_writing` on a synchronous client."""
        out = {u: k for u in set(users) if (k := self._cached(u)) is not None}
        missing = [u for u in set(users) if u not in out]
        if missing:
            fresh = {u: DataKey.create() for u in missing}
            with self.redis.pipeline(transaction=False) as pipe:
                for user in missing:
                    pipe.hsetnx(self._hash(user), user, self.masters.wrap(fresh[user], user))
                    pipe.hget(self._hash(user), user)
                replies = pipe.execute()
            for i, user in enumerate(missing):
                out[user] = self._remember(user, self.masters.unwrap(replies[2 * i + 1], user))
        return out

    # ------------------------------------------------------------------ reading
    async def current(self, user: str) -> DataKey | None:
        """``user``'s data key if there is one (never creates one); None after erasure."""
        cached = self._cached(user)
        if cached is not None:
            return cached
        stored = await self.redis.hget(self._hash(user), user)
        return None if stored is None else self._remember(user, self.masters.unwrap(stored, user))

    async def for_reading(self, user: str, key_id: bytes) -> DataKey | None:
        """The data key ``key_id`` of ``user``; None when it no longer exists (erased)."""
        cached = self._cached(user)
        if cached is not None and cached.id == key_id:
            return cached
        stored = await self.redis.hget(self._hash(user), user)
        if stored is None:
            self.forget(user)
            return None
        key = self._remember(user, self.masters.unwrap(stored, user))
        return key if key.id == key_id else None

    # ------------------------------------------------------------------ erasing
    async def erase(self, user: str) -> bool:
        """Delete ``user``'s data key; whether there was one."""
        self.forget(user)
        return bool(await self.redis.hdel(self._hash(user), user))

    async def rewrap(self, partition: int) -> int:
        """Wrap every data key of ``partition`` with the current master key (rotation);
        how many were rewritten. Compare-and-set per user, so a concurrent erase wins."""
        stored = await self.redis.hgetall(self.keys.data_keys(partition))
        rewritten = 0
        for raw_user, value in stored.items():
            user = raw_user.decode() if isinstance(raw_user, bytes) else str(raw_user)
            if self.masters.wrapped_by(value) == self.masters.current:
                continue
            new = self.masters.wrap(self.masters.unwrap(value, user), user)
            if await self._swap(self.redis, [self.keys.data_keys(partition)], [user, value, new]):
                rewritten += 1
        return rewritten

    async def wrapping(self, partition: int) -> dict[str, int]:
        """How many data keys of ``partition`` each master key wraps (``""``: unwrapped)."""
        counts: dict[str, int] = {}
        for value in (await self.redis.hgetall(self.keys.data_keys(partition))).values():
            name = self.masters.wrapped_by(value) or ""
            counts[name] = counts.get(name, 0) + 1
        return counts


async def rotate(store: KeyStore) -> dict[str, Any]:
    """``herald secrets rotate``: every data key re-wrapped by the current master key.

    Returns ``{"current", "rewrapped", "wrapped_by"}`` (the count per master key id
    afterwards: only the current one when done, so the old keys may be dropped).
    Events, snapshots and segments need no rewrite: they are sealed by the data keys,
    which do not change; only their wrapping does. Raises CryptoError when a data key
    is wrapped by a master key that ``HERALD_SECRET_KEYS`` no longer holds.
    """
    rewrapped = 0
    totals: dict[str, int] = {}
    for partition in range(store.partitions):
        rewrapped += await store.rewrap(partition)
        for name, count in (await store.wrapping(partition)).items():
            totals[name] = totals.get(name, 0) + count
    return {"current": store.masters.current, "rewrapped": rewrapped, "wrapped_by": totals}
