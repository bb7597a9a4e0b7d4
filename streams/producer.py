"""The producer: validated, idempotent appends to the partition streams.

``publish`` appends one event; ``publish_many`` groups a batch by partition and
appends each group with one Lua call, all in one pipeline. An event with an
idempotency key that was appended within the dedupe window answers the first
append (``Appended.duplicate``) and appends nothing; the check and the XADD are one
script on one slot, so concurrent publishers of one key yield exactly one entry.

:class:`SyncProducer` does the same for non-async services (Django, Flask,
scripts). Nothing here trims a stream: replay needs the whole log. A scheduled event
with a cancel key is routed before it is appended (streams/schedule_cancel.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from streams import codec, schedule_cancel
from streams.errors import CodecError, ValidationError
from streams.events import Appended, Envelope, Payload
from streams.ids import new_id, partition_of
from streams.keys import Keys
from streams.partitions import (
    ensure_partition_count,
    ensure_partition_count_sync,
    partition_for,
)
from streams.scripts import STREAMS_DIR, lua_path, script_source
from streams.settings import Settings
from streams.validation import Limits, validate_envelope


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class _Group:
    """One partition's share of a batch, ready for the append script."""

    partition: int
    indexes: list[int]
    ids: list[str]
    keys: list[str]
    args: list[Any]


class _Base:
    """Shared preparation: envelopes → validated, encoded, grouped script calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.limits = Limits.from_settings(settings)
        self._window_ms = int(settings.dedupe_window_s * 1000)
        # EVALSHA directly (not redis-py's Script in a pipeline, which sends SCRIPT
        # EXISTS before every pipeline): on NOSCRIPT only the groups that did not
        # run are sent again after loading, so nothing is appended twice.
        self._source = script_source(lua_path(STREAMS_DIR, "producer_append"))
        self._sha = hashlib.sha1(self._source.encode()).hexdigest()

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
                group = groups[partition] = _Group(
                    partition, [], [], [self.keys.stream(partition)], []
                )
            group.indexes.append(index)
            group.ids.append(env.id)
            if env.idempotency_key is not None:
                group.keys.append(self.keys.idempotency(partition, env.idempotency_key))
                group.args.extend((raw, env.id.encode()))
            else:
                group.args.extend((raw, b""))
        return list(groups.values())

    def _command(self, group: _Group) -> list[Any]:
        """EVALSHA arguments of one group's append."""
        return [
            self._sha,
            len(group.keys),
            *group.keys,
            self._window_ms,
            len(group.indexes),
            *group.args,
        ]

    @staticmethod
    def _results(
        groups: Iterable[_Group], replies: Iterable[Sequence[Any]], count: int
    ) -> list[Appended]:
        out: list[Any] = [None] * count
        for group, reply in zip(groups, replies, strict=True):
            p = group.partition
            for n, index in enumerate(group.indexes):
                position, first_id = reply[2 * n], reply[2 * n + 1]
                if first_id:
                    out[index] = Appended(_text(first_id), p, _text(position), True)
                else:
                    out[index] = Appended(group.ids[n], p, _text(position), False)
        return out

    def _failed(self, replies: Sequence[Any]) -> list[int]:
        """Indexes of groups whose script was not loaded; raises any other error."""
        missing = []
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                missing.append(i)
            elif isinstance(reply, Exception):
                raise reply
        return missing


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Producer(_Base):
    """Async producer over a ``redis.asyncio`` client; call :meth:`start` once."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(settings)
        self.redis = redis
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
        await schedule_cancel.write_routes(self.redis, self.keys, envelopes)  # before append
        replies: list[Any] = [None] * len(groups)
        todo = list(range(len(groups)))
        for _attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    pipe.execute_command("EVALSHA", *self._command(groups[i]))
                done = await pipe.execute(raise_on_error=False)
            for i, reply in zip(todo, done, strict=True):
                replies[i] = reply
            todo = [todo[i] for i in self._failed(done)]
            if not todo:
                return self._results(groups, replies, len(envelopes))
            await self.redis.script_load(self._source)
        raise NoScriptError("producer_append could not be loaded")


class SyncProducer(_Base):
    """Synchronous producer over a ``redis.Redis`` client, for non-async services."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(settings)
        self.redis = redis
        ensure_partition_count_sync(redis, self.keys, settings.partitions)

    def publish(self, envelope: Envelope) -> Appended:
        return self.publish_many([envelope])[0]

    def publish_many(self, envelopes: Sequence[Envelope]) -> list[Appended]:
        if not envelopes:
            return []
        groups = self._prepare(envelopes)
        schedule_cancel.write_routes_sync(self.redis, self.keys, envelopes)  # before append
        replies: list[Any] = [None] * len(groups)
        todo = list(range(len(groups)))
        for _attempt in range(2):
            with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    pipe.execute_command("EVALSHA", *self._command(groups[i]))
                done = pipe.execute(raise_on_error=False)
            for i, reply in zip(todo, done, strict=True):
                replies[i] = reply
            todo = [todo[i] for i in self._failed(done)]
            if not todo:
                return self._results(groups, replies, len(envelopes))
            self.redis.script_load(self._source)
        raise NoScriptError("producer_append could not be loaded")
