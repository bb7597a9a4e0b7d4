"""Blocking reads that can be cut short, on one server or over many slots of a Cluster.

A consumer waiting for new entries blocks in the server (``XREADGROUP … BLOCK``):
an idle consumer then costs nothing, and a new entry is handed over within a round
trip. Two things stand in the way of doing that well with a pooled connection:

- **Interrupting.** A stop, or partitions gained or lost, should not wait for a
  block to run out, or blocks must be short — and every short block that ends
  empty is a wake-up of the process and a command for the server. So each line
  (a lane of a consumer; on a Cluster, a stream) blocks on a connection of its own,
  opened once and kept, whose client id is known, and :meth:`BlockingFanout.interrupt`
  releases every blocked line at once with ``CLIENT UNBLOCK`` (the command then
  answers as if it timed out). Blocks can then be long.
- **Slots.** One server answers ``XREADGROUP … STREAMS s1 s2 … sN`` over every
  stream in one command. A Cluster refuses a command whose keys hash to different
  slots (``CROSSSLOT``) — also when one node serves all of them — and Herald's
  partitions live in different slots by design. There each stream gets its own
  blocking command on a connection to the node serving its slot, all sent at once;
  when the first answers with something, the others are released with ``CLIENT
  UNBLOCK``. A wait then costs one command per stream, with no polling.

Nothing is lost by releasing: a blocked command that was served in the meantime
has already answered (``CLIENT UNBLOCK`` of a client that is not blocked does
nothing), and every reply is collected before :meth:`BlockingFanout.first` returns.

Failure modes: a ``MOVED``/``ASK`` reply (the slot moved) or a lost connection (a
node died, a failover) closes that line's connection, refreshes the slot map and is
raised as the caller's error, unless other lines brought entries (those are returned;
the failed line is read again next time); the next call opens a connection to the
node that serves the line then. Cancelling :meth:`first` closes the connections in
use (a blocked command cannot be taken back otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions

from herald.streams.connection import is_cluster, refresh_topology

READ_MARGIN_S = 5.0  # a blocked reply may take this long past its BLOCK before it is given up
RELEASE_TRIES = 20  # CLIENT UNBLOCK of a line whose command has not reached the server yet
RELEASE_RETRY_S = 0.005


@dataclass(slots=True)
class _Line:
    """A line's own connection: the node it goes to and its client id there."""

    node: str
    conn: Any
    client_id: int
    blocked: bool = field(default=False)


class BlockingFanout:
    """Blocking commands on lines of their own; see the module docstring."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.cluster = is_cluster(redis)
        self._lines: dict[str, _Line] = {}

    async def first(self, commands: Mapping[str, tuple[str, Sequence[Any]]], block_ms: int,
                    ) -> dict[str, Any]:
        """Send each line's command (``{line: (a key it reads, command)}``, blocking up
        to ``block_ms``) at once; once one answers with something (or all time out, or
        :meth:`interrupt`), release the rest. Every line's raw reply (None: timed out
        or released)."""
        if self.cluster:
            await self.redis.initialize()  # the slot map (a new client has none yet)
        lines = {name: await self._line(name, key) for name, (key, _args) in commands.items()}
        waits = {name: asyncio.ensure_future(self._exchange(lines[name], args, block_ms))
                 for name, (_key, args) in commands.items()}
        try:
            pending = set(waits.values())
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is not None or t.result() is not None for t in done):
                    break
            if pending:
                await self._release([lines[n] for n, t in waits.items() if t in pending])
                await asyncio.wait(pending)
        except BaseException:
            for name, task in waits.items():
                if not task.done():
                    task.cancel()
                    await self._drop(name)
            raise
        out: dict[str, Any] = {}
        failed: BaseException | None = None
        for name, task in waits.items():
            exc = task.exception()
            if exc is None:
                out[name] = task.result()
            else:
                await self._drop(name)
                failed = failed or exc
        if failed is not None:
            if isinstance(failed, redis.exceptions.ConnectionError | OSError) or _moved(failed):
                await refresh_topology(self.redis)
            if any(v is not None for v in out.values()):
                return out  # entries some lines brought must reach the caller
            raise failed
        return out

    async def interrupt(self) -> None:
        """Release every line blocked now (their commands answer as timed out)."""
        await self._release([line for line in self._lines.values() if line.blocked])

    async def aclose(self) -> None:
        for name in list(self._lines):
            await self._drop(name)

    # ------------------------------------------------------------------ lines
    def _node(self, key: str) -> tuple[str, Any, dict[str, Any]]:
        """(name, connection class, connection kwargs) of the server serving ``key``."""
        if self.cluster:
            node = self.redis.get_node_from_key(key)
            return node.name, node.connection_class, dict(node.connection_kwargs)
        pool = self.redis.connection_pool
        return "server", pool.connection_class, dict(pool.connection_kwargs)

    async def _line(self, name: str, key: str) -> _Line:
        node, connection_class, kwargs = self._node(key)
        line = self._lines.get(name)
        if line is not None and line.node == node and line.conn.is_connected:
            return line
        if line is not None:
            await self._drop(name)
        kwargs.pop("retry", None)
        conn = connection_class(**kwargs)
        await conn.connect()
        await conn.send_command("CLIENT", "ID")
        client_id = int(await conn.read_response())
        line = self._lines[name] = _Line(node, conn, client_id)
        return line

    async def _drop(self, name: str) -> None:
        line = self._lines.pop(name, None)
        if line is not None:
            line.blocked = False
            with contextlib.suppress(Exception):
                await line.conn.disconnect()

    @staticmethod
    async def _exchange(line: _Line, args: Sequence[Any], block_ms: int) -> Any:
        line.blocked = True
        try:
            await line.conn.send_command(*args)
            return await line.conn.read_response(timeout=block_ms / 1000 + READ_MARGIN_S)
        finally:
            line.blocked = False

    async def _release(self, lines: list[_Line]) -> None:
        """CLIENT UNBLOCK each (on another connection to its node), all at once. A
        command sent but not yet blocking in the server when the release arrives is
        released again, a few times (:data:`RELEASE_TRIES`)."""
        async def unblock(line: _Line) -> None:
            for _ in range(RELEASE_TRIES):
                if not line.blocked:
                    return
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    if not self.cluster:
                        done = await self.redis.execute_command(
                            "CLIENT", "UNBLOCK", line.client_id)
                    else:
                        node = self.redis.get_node(node_name=line.node)
                        if node is None:
                            return
                        done = await self.redis.execute_command(
                            "CLIENT", "UNBLOCK", line.client_id, target_nodes=node)
                    if done:
                        return
                await asyncio.sleep(RELEASE_RETRY_S)

        await asyncio.gather(*(unblock(line) for line in lines))


def _moved(exc: BaseException) -> bool:
    """A reply that says the slot map is stale."""
    e = redis.exceptions
    return isinstance(exc, e.MovedError | e.AskError | e.TryAgainError | e.ClusterDownError)

