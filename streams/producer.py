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

from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from herald.streams import codec, schedule_cancel, tenants
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import Batch, text
from herald.streams.crypto import DataKey
from herald.streams.durability import Durability
from herald.streams.errors import CodecError, IdempotencyConflictError, ValidationError
from herald.streams.events import Appended, Envelope, Payload, new_envelope
from herald.streams.idempotency import IdempotencyRecords, payload_digest, server_bucket
from herald.streams.ids import now_ms, partition_of
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.partitions import (
    ensure_partition_count,
    ensure_partition_count_sync,
    partition_for,
)
from herald.streams.scripts import Lua
from herald.streams.sealing import has_secret, seal, sealable
from herald.streams.settings import Settings
from herald.streams.validation import Limits, validate_envelope

__all__ = ["Producer", "SyncProducer", "now_ms"]

PLAIN_MAX = 4  # events of a group without idempotency keys sent as plain XADDs


@dataclass(slots=True)
class _Group:
    """One partition's share of a batch, ready for the append script."""

    partition: int
    indexes: list[int]
    ids: list[str]
    stream: str
    args: list[Any]  # per event: encoded, id, idempotency key or ""
    digests: list[str] = field(default_factory=list)  # per event: its digest ("": no key)
    keyed: bool = False  # an event of the group has an idempotency key
    bucket: int | None = None  # the idempotency bucket the server named (a retry)


class _Base:
    """Shared preparation: envelopes → validated, encoded, grouped script calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.limits = Limits.from_settings(settings)
        self.records = IdempotencyRecords.from_settings(settings)
        self.durability = Durability(settings)
        # On NOSCRIPT only the groups that did not run are sent again after loading,
        # so nothing is appended twice (streams/scripts.py).
        self._script = Lua(__file__, "producer_append")

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
        return new_envelope(user, payload, self.settings.partitions,
                            idempotency_key=idempotency_key, correlation=correlation,
                            time_ms=time_ms)

    def _check_batch(self, envelopes: Sequence[Envelope]) -> set[str]:
        """The users whose data keys the batch needs (ValidationError for a batch too big)."""
        if len(envelopes) > self.settings.max_batch:
            raise ValidationError(
                "batch", f"has {len(envelopes)} events; the limit is {self.settings.max_batch}"
            )
        if not self.settings.seal:  # content stays in clear; credentials never do
            return {env.user for env in envelopes if env.sealed is None
                    and has_secret(env.payload)}
        return {env.user for env in envelopes if env.sealed is None and sealable(env.payload)}

    def _prepare(self, envelopes: Sequence[Envelope], data_keys: Mapping[str, DataKey],
                 digests: Sequence[str | None] | None = None) -> list[_Group]:
        """Validated, encoded groups; ``digests`` (per envelope, None = its payload's)
        names what each keyed event says, for the conflict check."""
        groups: dict[int, _Group] = {}
        for index, env in enumerate(envelopes):
            key = data_keys.get(env.user) if env.sealed is None and sealable(env.payload) else None
            try:
                stored = env if key is None else seal(env, key,
                                                      only_secrets=not self.settings.seal)
                raw = codec.encode(stored)
            except CodecError as exc:
                raise ValidationError("data", str(exc)) from exc
            validate_envelope(env, len(raw), self.limits)
            partition = self.partition(env.user)
            if partition_of(env.id) != partition:
                raise ValidationError("id", "names another partition than the user's")
            group = groups.get(partition)
            if group is None:
                group = groups[partition] = _Group(
                    partition, [], [], self.keys.stream(partition), []
                )
            group.indexes.append(index)
            group.ids.append(env.id)
            group.args.extend((raw, env.id, "" if env.idempotency_key is None
                               else tenants.record_key(env.user, env.idempotency_key)))
            if env.idempotency_key is not None:
                group.keyed = True
                given = digests[index] if digests is not None else None
                group.digests.append(given or payload_digest(env))
            else:
                group.digests.append("")
        return list(groups.values())

    def _queue(self, pipe: Any, todo: Sequence[int], groups: Sequence[_Group]) -> list[int]:
        """Queue the appends of the groups ``todo``: per group 0 (one script call) or
        the number of plain XADDs.

        A group with an idempotency key is one script call. A small group without
        one is plain XADDs — the same entries, with no script to set up for one or
        two events (a batch of 100 over 64 partitions is mostly such groups).
        """
        counts = []
        for i in todo:
            group = groups[i]
            if group.keyed or len(group.indexes) > PLAIN_MAX:
                self._script.queue(pipe, *self._command(group))
                counts.append(0)
                continue
            for raw in group.args[0::3]:
                pipe.execute_command("XADD", group.stream, "*", ENTRY_FIELD, raw)
            counts.append(len(group.indexes))
        return counts

    @staticmethod
    def _replies(counts: Sequence[int], done: Sequence[Any]) -> list[Any]:
        """One reply per queued group: the script's, or the list of XADD positions."""
        out, at = [], 0
        for n in counts:
            if n == 0:
                out.append(done[at])
                at += 1
            else:
                part = done[at : at + n]
                out.append(next((r for r in part if isinstance(r, Exception)), part))
                at += n
        return out

    def _command(self, group: _Group) -> tuple[list[str], list[Any]]:
        """Keys and arguments of one group's append script."""
        buckets, bucket = self.records.script_keys(group.partition, bucket=group.bucket)
        return ([group.stream, *buckets],
                [self.records.span_ms, bucket, codec.pack_value(group.args),
                 codec.pack_value(group.digests) if group.keyed and group.digests else ""])

    @staticmethod
    def _results(
        groups: Iterable[_Group], replies: Iterable[Sequence[Any]], count: int
    ) -> list[Appended]:
        out: list[Any] = [None] * count
        for group, reply in zip(groups, replies, strict=True):
            p, ids = group.partition, group.ids
            for n, (index, answer) in enumerate(zip(group.indexes, reply, strict=True)):
                if type(answer) is list:  # a duplicate: [first id, first position(, conflict)]
                    out[index] = Appended(text(answer[0]), p, text(answer[1]), True,
                                          len(answer) > 2)
                else:
                    out[index] = Appended(ids[n], p, text(answer), False)
        return out

    @staticmethod
    def _retry(
        todo: Sequence[int], done: Sequence[Any], groups: Sequence[_Group]
    ) -> tuple[list[int], bool]:
        """Groups to send again, and whether the script must be loaded first.

        A group whose script was not loaded, or whose idempotency bucket the server
        named (``BUCKET <s>``: the clock or the call was a window off), wrote nothing
        and is sent again; any other error is raised.
        """
        again, load = [], False
        for i, reply in zip(todo, done, strict=True):
            if isinstance(reply, NoScriptError):
                again.append(i)
                load = True
            elif (bucket := server_bucket(reply)) is not None:
                groups[i].bucket = bucket
                again.append(i)
            elif isinstance(reply, Exception):
                raise reply
        return again, load

    def _appends(
        self, groups: Sequence[_Group], count: int
    ) -> Generator[list[tuple[Any, ...]] | None, list[Any], list[Appended]]:
        """The append protocol, without I/O, shared by the async and the sync producer:
        yields the commands to send in one round trip (the caller sends back their
        replies, errors as values), or None after a NOSCRIPT (the caller loads the
        script on every server, sends back nothing), until it returns the results."""
        replies: list[Any] = [None] * len(groups)
        todo = list(range(len(groups)))
        for _attempt in range(3):
            commands = _Commands()
            counts = self._queue(commands, todo, groups)
            done = self._replies(counts, (yield commands))
            for i, reply in zip(todo, done, strict=True):
                replies[i] = reply
            todo, load = self._retry(todo, done, groups)
            if not todo:
                return self._results(groups, replies, count)
            if load:
                yield None
        raise NoScriptError("producer_append could not be run (script or bucket kept failing)")


def _single(envelope: Envelope, results: list[Appended]) -> Appended:
    """The one result of a single publish; a conflict raises."""
    done = results[0]
    if done.conflict:
        raise IdempotencyConflictError(envelope.idempotency_key or "", done.id, done.position)
    return done


class _Commands(list[tuple[Any, ...]]):
    """Commands collected for one round trip (what :meth:`_Base._queue` fills)."""

    def execute_command(self, *args: Any) -> None:
        self.append(args)


class Producer(_Base):
    """Async producer over a ``redis.asyncio`` client; call :meth:`start` once."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(settings)
        self.redis = redis
        self.data_keys = KeyStore(redis, settings)
        self._started = False

    async def start(self) -> None:
        """Check the partition count recorded in Redis (PartitionMismatchError)."""
        await ensure_partition_count(self.redis, self.keys, self.settings.partitions,
                                     self.records.span_ms)
        self._started = True

    async def publish(self, envelope: Envelope, *, digest: str | None = None) -> Appended:
        """Append one event; raises ValidationError before anything is written, and
        IdempotencyConflictError when its idempotency key was used for another payload
        (``digest``: what the event says, default :func:`payload_digest`)."""
        return _single(envelope, await self.publish_many(
            [envelope], digests=None if digest is None else [digest]))

    async def publish_many(self, envelopes: Sequence[Envelope], *,
                           digests: Sequence[str | None] | None = None) -> list[Appended]:
        """Append a batch (one pipeline, one script call per partition), in order per user.

        Validation of every event happens before any is written: a bad event
        rejects the whole batch with a ValidationError. An event whose idempotency
        key was used for another payload is not appended: its result has
        ``conflict=True`` (and ``duplicate=True``) and names the first append.
        """
        if not self._started:
            await self.start()
        if not envelopes:
            return []
        users = self._check_batch(envelopes)
        groups = self._prepare(envelopes, await self.data_keys.for_writing(users) if users else {},
                               digests)
        await schedule_cancel.write_routes(self.redis, self.keys, envelopes)  # before append
        steps = self._appends(groups, len(envelopes))
        streams = [group.stream for group in groups]
        commands = next(steps)
        while True:
            if commands is None:
                await self._script.load(self.redis)
                replies = []
            else:
                batch = Batch(self.redis)
                batch.commands.extend(commands)
                waits = self.durability.commands(self.redis, streams)
                for command, node in waits:
                    batch.execute_command(*command, **({"target_nodes": node} if node else {}))
                replies = await batch.execute()
                self.durability.check(replies[:len(commands)], replies[len(commands):])
                replies = replies[:len(commands)]
            try:
                commands = steps.send(replies)
            except StopIteration as finished:
                return finished.value


class SyncProducer(_Base):
    """Synchronous producer over a ``redis.Redis`` client, for non-async services."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(settings)
        self.redis = redis
        self.data_keys = KeyStore(redis, settings)
        ensure_partition_count_sync(redis, self.keys, settings.partitions,
                                    self.records.span_ms)

    def publish(self, envelope: Envelope, *, digest: str | None = None) -> Appended:
        """As :meth:`Producer.publish` (IdempotencyConflictError included)."""
        return _single(envelope, self.publish_many(
            [envelope], digests=None if digest is None else [digest]))

    def publish_many(self, envelopes: Sequence[Envelope], *,
                     digests: Sequence[str | None] | None = None) -> list[Appended]:
        """As :meth:`Producer.publish_many` (conflicts as ``conflict=True`` results)."""
        if not envelopes:
            return []
        users = self._check_batch(envelopes)
        groups = self._prepare(envelopes, self.data_keys.for_writing_sync(users) if users else {},
                               digests)
        schedule_cancel.write_routes_sync(self.redis, self.keys, envelopes)  # before append
        steps = self._appends(groups, len(envelopes))
        streams = [group.stream for group in groups]
        commands = next(steps)
        while True:
            if commands is None:
                self._script.load_sync(self.redis)
                replies = []
            else:
                with self.redis.pipeline(transaction=False) as pipe:
                    for command in commands:
                        pipe.execute_command(*command)
                    waits = self.durability.commands(self.redis, streams)
                    for command, node in waits:
                        pipe.execute_command(*command, **({"target_nodes": node} if node else {}))
                    replies = pipe.execute(raise_on_error=False)
                self.durability.check(replies[:len(commands)], replies[len(commands):])
                replies = replies[:len(commands)]
            try:
                commands = steps.send(replies)
            except StopIteration as finished:
                return finished.value
