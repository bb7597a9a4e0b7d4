"""The producer: validated, idempotent appends to the partition streams.

``publish`` appends one event; ``publish_many`` groups a batch by partition and
appends each group with one Lua call, all in one pipeline. An event with an
idempotency key that was appended within the dedupe window answers the first
append (``Appended.duplicate``) and appends nothing; the check and the XADD are one
script on one slot, so concurrent publishers of one key yield exactly one entry.

:class:`SyncProducer` does the same for non-async services (Django, Flask,
scripts). Nothing here trims a stream: replay needs the whole log.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streams import codec
from streams.errors import CodecError, ValidationError
from streams.events import Appended, Envelope, Payload
from streams.ids import new_id, partition_of
from streams.keys import Keys
from streams.partitions import (
    ensure_partition_count,
    ensure_partition_count_sync,
    partition_for,
)
from streams.scripts import STREAMS_DIR, register
from streams.settings import Settings
from streams.validation import Limits, validate_envelope


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class _Group:
    """One partition's share of a batch, ready for the append script."""

    partition: int
    indexes: list[int]
    keys: list[str]
    args: list[Any]


class _Base:
    """Shared preparation: envelopes → validated, encoded, grouped script calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.limits = Limits.from_settings(settings)
        self._window_ms = int(settings.dedupe_window_s * 1000)

    def partition(self, user: str) -> int:
        return partition_for(user, self.settings.partitions)

    def envelope(
        self,
        user: str,
        payload: Payload,
        *,
        idempotency_key: str | None = None,
        correlation: str | None = None,
        time_ms: int | None = None,
    ) -> Envelope:
        """A new envelope for ``user`` with a fresh id of the user's partition."""
        ts = now_ms() if time_ms is None else time_ms
        return Envelope(
            id=new_id(self.partition(user), ts),
            user=user,
            time=ts,
            payload=payload,
            idempotency_key=idempotency_key,
            correlation=correlation,
        )

    def _prepare(self, envelopes: Sequence[Envelope]) -> list[_Group]:
        if len(envelopes) > self.settings.max_batch:
            raise ValidationError(
                "batch", f"has {len(envelopes)} events; the limit is {self.settings.max_batch}"
            )
        groups: dict[int, _Group] = {}
        for index, env in enumerate(envelopes):
            try:
                raw = codec.encode(env)
            except CodecError as exc:
                raise ValidationError("data", str(exc)) from exc
            validate_envelope(env, len(raw), self.limits)
            partition = self.partition(env.user)
            if partition_of(env.id) != partition:
                raise ValidationError("id", "names another partition than the user's")
            group = groups.get(partition)
            if group is None:
                group = groups[partition] = _Group(partition, [], [self.keys.stream(partition)], [])
            group.indexes.append(index)
            has_key = env.idempotency_key is not None
            if has_key:
                group.keys.append(self.keys.idempotency(partition, env.idempotency_key or ""))
            group.args.extend((raw, env.id.encode(), b"1" if has_key else b"0"))
        return list(groups.values())

    def _script_args(self, group: _Group) -> list[Any]:
        return [self._window_ms, len(group.indexes), *group.args]

    @staticmethod
    def _results(
        groups: Iterable[_Group], replies: Iterable[Sequence[Any]], count: int
    ) -> list[Appended]:
        out: list[Any] = [None] * count
        for group, reply in zip(groups, replies, strict=True):
            p = group.partition
            for n, index in enumerate(group.indexes):
                flag, event_id, position = reply[3 * n], reply[3 * n + 1], reply[3 * n + 2]
                out[index] = Appended(_text(event_id), p, _text(position), flag == 0)
        return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Producer(_Base):
    """Async producer over a ``redis.asyncio`` client; call :meth:`start` once."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(settings)
        self.redis = redis
        self._append = register(redis, STREAMS_DIR, "producer_append")
        self._started = False

    async def start(self) -> None:
        """Check the partition count recorded in Redis (PartitionMismatchError)."""
        await ensure_partition_count(self.redis, self.keys, self.settings.partitions)
        self._started = True

    async def publish(self, envelope: Envelope) -> Appended:
        """Append one event; raises ValidationError before anything is written."""
        return (await self.publish_many([envelope]))[0]

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[Appended]:
        """Append a batch (one pipeline, one script call per partition), in order per user.

        Validation of every event happens before any is written: a bad event
        rejects the whole batch with a ValidationError.
        """
        if not self._started:
            await self.start()
        if not envelopes:
            return []
        groups = self._prepare(envelopes)
        if len(groups) == 1:
            g = groups[0]
            replies = [await self._append(keys=g.keys, args=self._script_args(g))]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for g in groups:
                    await self._append(keys=g.keys, args=self._script_args(g), client=pipe)
                replies = await pipe.execute()
        return self._results(groups, replies, len(envelopes))


class SyncProducer(_Base):
    """Synchronous producer over a ``redis.Redis`` client, for non-async services."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(settings)
        self.redis = redis
        self._append = register(redis, STREAMS_DIR, "producer_append")
        ensure_partition_count_sync(redis, self.keys, settings.partitions)

    def publish(self, envelope: Envelope) -> Appended:
        return self.publish_many([envelope])[0]

    def publish_many(self, envelopes: Sequence[Envelope]) -> list[Appended]:
        if not envelopes:
            return []
        groups = self._prepare(envelopes)
        with self.redis.pipeline(transaction=False) as pipe:
            for g in groups:
                self._append(keys=g.keys, args=self._script_args(g), client=pipe)
            replies = pipe.execute()
        return self._results(groups, replies, len(envelopes))
