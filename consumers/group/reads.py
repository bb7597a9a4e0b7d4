"""Consumer-group reads of the partition streams, with Redis errors translated.

- ``ensure``: create the group at the start of the log (``0``, MKSTREAM), never at
  ``$`` — a group created after events exist still sees them all.
- ``read_new``: one XREADGROUP over many partitions (``>``), blocking up to
  ``block_ms`` on a connection of the reader's own that :meth:`StreamGroup.interrupt`
  releases (streams/blocking.py). On Redis Cluster, where one command cannot span
  slots: one non-blocking read per partition in one
  :class:`streams.connection.Batch`, and when all come back empty, one blocking read
  per partition on its own connection, the first to answer releasing the others.
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
from herald.streams.blocking import BlockingFanout
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
        self._fanout: BlockingFanout | None = None
        self._quiet: set[str] = set()  # streams whose last blocking wait ended empty

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
        per_partition: bool, connections: int = 1, line: str = "read",
    ) -> dict[int, list[Entry]]:
        """New entries (``>``) of the given partitions, up to ``count`` each; waiting up
        to ``block_ms`` for some (None: not at all) on the blocking line ``line`` (one
        per reader; :meth:`interrupt` cuts the wait short). ``connections`` > 1 splits
        a read that does not wait over that many connections, read at once."""
        if not partitions:
            return {}
        if connections > 1 and block_ms is None and not per_partition and len(partitions) > 1:
            step = -(-len(partitions) // connections)
            parts = await asyncio.gather(*(
                self.read_new(partitions[i : i + step], count, None, per_partition=False)
                for i in range(0, len(partitions), step)))
            return {p: e for part in parts for p, e in part.items()}
        by_stream = {self.stream(p): p for p in partitions}
        streams = list(by_stream)
        if block_ms is None:
            replies = await self._look(streams, count, per_partition)
        elif not per_partition:
            got = await self.fanout.first({line: (streams[0], self._xreadgroup(
                count, streams, block_ms))}, block_ms)
            replies = [got[line]]
        else:
            replies = [] if self._quiet.issuperset(streams) else \
                await self._look(streams, count, per_partition=True)
            if not any(r for r in replies if not isinstance(r, Exception)):
                replies = await self._wait_each(line, streams, count, block_ms)
        out: dict[int, list[Entry]] = {}
        for i, reply in enumerate(replies):
            if isinstance(reply, redis.exceptions.ResponseError):
                raise self._translate(reply, partitions[i] if per_partition else partitions[0])
            if isinstance(reply, Exception):
                raise reply
            for stream, rows in reply or ():
                if rows:
                    out[by_stream[text(stream)]] = entries_of(rows)
        return out

    def _xreadgroup(self, count: int, streams: Sequence[str], block_ms: int | None
                    ) -> tuple[Any, ...]:
        wait = () if block_ms is None else ("BLOCK", block_ms)
        return ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count, *wait,
                "STREAMS", *streams, *(">" for _ in streams))

    async def _look(self, streams: Sequence[str], count: int, per_partition: bool) -> list[Any]:
        """Reads that do not wait: one over all streams, or (Cluster: one command cannot
        span slots) one per stream, in one round trip."""
        read = Batch(self.redis)  # replies raw: no dict built per entry
        for group in ([s] for s in streams) if per_partition else [streams]:
            read.execute_command(*self._xreadgroup(count, group, None))
        return await read.execute()

    async def _wait_each(self, line: str, streams: list[str], count: int, block_ms: int
                         ) -> list[Any]:
        """One blocking read per stream, until the first has entries (Cluster)."""
        try:
            got = await self.fanout.first(
                {f"{line}:{s}": (s, self._xreadgroup(count, [s], block_ms)) for s in streams},
                block_ms)
        except redis.exceptions.ResponseError as exc:  # NOGROUP: translated by the caller
            return [exc for _ in streams]
        replies = [got.get(f"{line}:{s}") for s in streams]
        for stream, reply in zip(streams, replies, strict=True):
            if reply is None:
                self._quiet.add(stream)
            else:
                self._quiet.discard(stream)
        return replies

    @property
    def fanout(self) -> BlockingFanout:
        if self._fanout is None:
            self._fanout = BlockingFanout(self.redis)
        return self._fanout

    async def interrupt(self) -> None:
        """Cut every blocking read of this consumer short (it returns what it has)."""
        if self._fanout is not None:
            await self._fanout.interrupt()

    async def aclose(self) -> None:
        """Close the connections of blocking reads."""
        if self._fanout is not None:
            await self._fanout.aclose()

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

    async def pending_holders(self, partitions: Sequence[int]) -> dict[int, set[str]]:
        """The partitions with pending entries, each with the consumers holding them
        (one XPENDING summary each, in one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xpending(self.stream(p), self.group)
            replies = await pipe.execute(raise_on_error=False)
        out: dict[int, set[str]] = {}
        for p, reply in zip(partitions, replies, strict=True):
            if isinstance(reply, dict) and int(reply.get("pending", 0)) > 0:
                out[p] = {text(c["name"]) for c in reply.get("consumers", ())
                          if int(c["pending"]) > 0}
        return out

    async def foreign_pending(self, partitions: Sequence[int]) -> list[int]:
        """The partitions where consumers other than this one hold pending entries."""
        holders = await self.pending_holders(partitions)
        return [p for p, names in holders.items() if names - {self.consumer}]

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
