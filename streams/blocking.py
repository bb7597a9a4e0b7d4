"""Blocking reads over keys of many slots at once, for Redis Cluster.

One server answers ``XREADGROUP … BLOCK … STREAMS s1 s2 … sN`` over every stream
in one command. A Cluster refuses a command whose keys hash to different slots
(``CROSSSLOT``) — also when one node serves all of them — and Herald's partitions
live in different slots by design, so one blocking command cannot wait for all of
them, and polling them instead costs CPU on both sides and latency.

:class:`BlockingFanout` waits on each key with its own blocking command, each on a
connection of its own to the node that serves the key's slot (opened once and
kept), all sent at once. When the first reply carries something, the others are
released with ``CLIENT UNBLOCK`` (the command then answers as if it timed out), so
a wait costs one command per key, a new entry is handed over within a round trip
of its arrival, and an idle consumer sleeps in the server: no polling.

Nothing is lost by releasing: a blocked command that was served in the meantime
has already answered (``CLIENT UNBLOCK`` of a client that is not blocked does
nothing), and every reply is collected before :meth:`BlockingFanout.first` returns.

Failure modes: a ``MOVED``/``ASK`` reply (the slot moved) or a lost connection
(a node died, a failover) closes that key's connection, refreshes the slot map and
is raised as the caller's error; the next call opens a connection to the node that
serves the key then. Cancelling :meth:`first` closes the connections in use (a
blocked command cannot be taken back otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.exceptions

from herald.streams.connection import refresh_topology

READ_MARGIN_S = 5.0  # a blocked reply may take this long past its BLOCK before it is given up


@dataclass(slots=True)
class _Line:
    """A key's own connection: the node it goes to and its client id there."""

    node: str
    conn: Any
    client_id: int


class BlockingFanout:
    """Per-key blocking commands on a Cluster; see the module docstring."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._lines: dict[str, _Line] = {}

    async def first(self, commands: Mapping[str, Sequence[Any]], block_ms: int,
                    ) -> dict[str, Any]:
        """Send ``commands[key]`` (a blocking command on ``key``, blocking ``block_ms``)
        for every key at once; once one answers with something (or all time out),
        release the rest. Every key's raw reply (None: timed out or released)."""
        await self.redis.initialize()  # the slot map (a new client has none yet)
        lines = {key: await self._line(key) for key in commands}
        waits = {key: asyncio.ensure_future(self._exchange(lines[key], args, block_ms))
                 for key, args in commands.items()}
        try:
            pending = set(waits.values())
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is not None or t.result() is not None for t in done):
                    break
            if pending:
                await self._release([lines[k] for k, t in waits.items() if t in pending])
                await asyncio.wait(pending)
        except BaseException:
            for key, task in waits.items():
                if not task.done():
                    task.cancel()
                    await self._drop(key)
            raise
        out: dict[str, Any] = {}
        failed: BaseException | None = None
        for key, task in waits.items():
            exc = task.exception()
            if exc is None:
                out[key] = task.result()
            else:
                await self._drop(key)
                failed = failed or exc
        if failed is not None:
            if isinstance(failed, redis.exceptions.ConnectionError | OSError) or _moved(failed):
                await refresh_topology(self.redis)
            if out and any(v is not None for v in out.values()):
                # Entries some keys delivered must reach the caller; the failed key is
                # read again next time.
                return out
            raise failed
        return out

    async def aclose(self) -> None:
        for key in list(self._lines):
            await self._drop(key)

    # ------------------------------------------------------------------ lines
    async def _line(self, key: str) -> _Line:
        node = self.redis.get_node_from_key(key)
        line = self._lines.get(key)
        if line is not None and line.node == node.name and line.conn.is_connected:
            return line
        if line is not None:
            await self._drop(key)
        kwargs = {k: v for k, v in node.connection_kwargs.items() if k != "retry"}
        conn = node.connection_class(**kwargs)
        await conn.connect()
        await conn.send_command("CLIENT", "ID")
        client_id = int(await conn.read_response())
        line = self._lines[key] = _Line(node.name, conn, client_id)
        return line

    async def _drop(self, key: str) -> None:
        line = self._lines.pop(key, None)
        if line is not None:
            with contextlib.suppress(Exception):
                await line.conn.disconnect()

    @staticmethod
    async def _exchange(line: _Line, args: Sequence[Any], block_ms: int) -> Any:
        await line.conn.send_command(*args)
        return await line.conn.read_response(timeout=block_ms / 1000 + READ_MARGIN_S)

    async def _release(self, lines: list[_Line]) -> None:
        """CLIENT UNBLOCK each (on another connection to its node), all at once."""
        async def unblock(line: _Line) -> None:
            node = self.redis.get_node(node_name=line.node)
            if node is not None:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await self.redis.execute_command("CLIENT", "UNBLOCK", line.client_id,
                                                     target_nodes=node)

        await asyncio.gather(*(unblock(line) for line in lines))


def _moved(exc: BaseException) -> bool:
    """A reply that says the slot map is stale."""
    e = redis.exceptions
    return isinstance(exc, e.MovedError | e.AskError | e.TryAgainError | e.ClusterDownError)
