"""Consumer-group reads of the partition streams, with Redis errors translated.

- ``ensure``: create the group at the start of the log (``0``, MKSTREAM), never at
  ``$`` — a group created after events exist still sees them all.
- ``read_new``: one batched XREADGROUP over many partitions (``>``), blocking up to
  ``block_ms``; on Redis Cluster, where one command cannot span slots, one
  non-blocking read per partition; either way one :class:`streams.connection.Batch`.
- ``read_pending``: take over the group's pending entries of a partition (XAUTOCLAIM
  to this consumer, min idle per handler), then re-read this consumer's PEL from
  ``0`` in log order, with each entry's delivery count (XPENDING).

A missing group or stream (NOGROUP) raises :class:`GroupMissingError`; nothing here
recreates a group after start.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import redis.exceptions

from herald.consumers.errors import GroupMissingError
from herald.consumers.group.handler import Entry, entries_of
from herald.streams.connection import Batch, text
from herald.streams.keys import Keys
from herald.streams.scripts import register

AUTOCLAIM_PAGE = 1000
AUTOCLAIM_MAX_PAGES = 1000  # bounds one takeover's claim loop (1M pending entries)


class StreamGroup:
    """One consumer of one group over the partition streams."""

    def __init__(self, redis: Any, keys: Keys, group: str, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.consumer = consumer
        self._streams: dict[int, str] = {}
        # redis-py's XAUTOCLAIM JUSTID reply drops the cursor: claim through a script.
        self._claim = register(redis, __file__, "group_claim")

    def stream(self, partition: int) -> str:
        name = self._streams.get(partition)
        if name is None:
            name = self._streams[partition] = self.keys.stream(partition)
        return name

    def _translate(self, exc: redis.exceptions.ResponseError, partition: int) -> Exception:
        if str(exc).startswith("NOGROUP"):
            return GroupMissingError(self.stream(partition), self.group)
        return exc

    async def ensure(self, partitions: Sequence[int]) -> None:
        """Create the group on every partition stream at ``0`` (idempotent)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xgroup_create(self.stream(p), self.group, id="0", mkstream=True)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and not str(reply).startswith("BUSYGROUP"):
                raise reply

    async def read_new(
        self, partitions: Sequence[int], count: int, block_ms: int | None, *,
        per_partition: bool, connections: int = 1,
    ) -> dict[int, list[Entry]]:
        """New entries (``>``) of the given partitions, up to ``count`` each; waiting up
        to ``block_ms`` for some (None: not at all). ``connections`` > 1 splits a read
        that does not wait over that many connections, read at once."""
        if not partitions:
            return {}
        if connections > 1 and block_ms is None and not per_partition and len(partitions) > 1:
            step = -(-len(partitions) // connections)
            parts = await asyncio.gather(*(
                self.read_new(partitions[i : i + step], count, None, per_partition=False)
                for i in range(0, len(partitions), step)))
            return {p: e for part in parts for p, e in part.items()}
        by_stream = {self.stream(p): p for p in partitions}
        read = Batch(self.redis)  # replies raw: no dict built per entry
        if per_partition:  # Cluster: one command cannot span slots, so no blocking
            for stream in by_stream:
                read.execute_command("XREADGROUP", "GROUP", self.group, self.consumer,
                                     "COUNT", count, "STREAMS", stream, ">")
        else:
            wait = () if block_ms is None else ("BLOCK", block_ms)
            read.execute_command("XREADGROUP", "GROUP", self.group, self.consumer,
                                 "COUNT", count, *wait, "STREAMS",
                                 *by_stream, *(">" for _ in by_stream))
        out: dict[int, list[Entry]] = {}
        for i, reply in enumerate(await read.execute()):
            if isinstance(reply, redis.exceptions.ResponseError):
                raise self._translate(reply, partitions[i] if per_partition else partitions[0])
            if isinstance(reply, Exception):
                raise reply
            for stream, rows in reply or ():
                if rows:
                    out[by_stream[text(stream)]] = entries_of(rows)
        return out

    async def claim_all(self, partition: int, min_idle_ms: int) -> int:
        """XAUTOCLAIM every pending entry of the group idle ≥ min_idle_ms; how many."""
        stream, start, claimed = self.stream(partition), "0-0", 0
        try:
            for _ in range(AUTOCLAIM_MAX_PAGES):
                reply = await self._claim(
                    keys=[stream],
                    args=[self.group, self.consumer, min_idle_ms, start, AUTOCLAIM_PAGE],
                )
                start = text(reply[0])
                claimed += int(reply[1])
                if start == "0-0":
                    break
        except redis.exceptions.ResponseError as exc:
            raise self._translate(exc, partition) from exc
        return claimed

    async def foreign_pending(self, partitions: Sequence[int]) -> list[int]:
        """The partitions where consumers other than this one hold pending entries."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xpending(self.stream(p), self.group)
            replies = await pipe.execute(raise_on_error=False)
        me = self.consumer.encode()
        out = []
        for p, reply in zip(partitions, replies, strict=True):
            if isinstance(reply, dict) and any(
                c["name"] != me and int(c["pending"]) > 0 for c in reply.get("consumers", ())
            ):
                out.append(p)
        return out

    async def read_pending(self, partition: int, count: int) -> list[Entry]:
        """The first ``count`` entries of this consumer's PEL, in order, with counts."""
        stream = self.stream(partition)
        try:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {stream: "0"}, count=count
            )
            rows = reply[0][1] if reply else []
            if not rows:
                return []
            pending = await self.redis.xpending_range(
                stream, self.group, text(rows[0][0]), text(rows[-1][0]), len(rows),
                self.consumer,
            )
        except redis.exceptions.ResponseError as exc:
            raise self._translate(exc, partition) from exc
        counts = {text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [dataclasses.replace(entry, deliveries=counts.get(entry.position, 1))
                for entry in entries_of(rows)]
