"""When a publish is acknowledged: ``HERALD_PUBLISH_DURABILITY``.

- ``leader`` (default): once the primary that serves the partition applied the
  append. A primary that fails before its replica copied the entry loses it, and a
  promoted replica does not have it: Redis replication is asynchronous.
- ``replica``: also once ``HERALD_PUBLISH_REPLICAS`` replicas have it (``WAIT``).
- ``fsync``: once it is in the primary's append-only file on disk and in that many
  replicas' (``WAITAOF``); with 0 replicas, the primary's disk alone.

The wait goes in the same round trip as the appends, on the same connection (WAIT
and WAITAOF count that connection's writes): one per server written to on a
Cluster. ``fsync`` with replicas sends ``WAIT`` before ``WAITAOF``: a replica
answers the primary's request for acknowledgement with the offset it has fsynced
*before* it fsyncs the writes that came with the request, and says more only in its
next periodic acknowledgement, a second later — so a WAITAOF sent right behind the
writes took ~1 s (measured on Valkey 8.1 with ``appendfsync always``: 955 ms vs 5 ms
behind a WAIT, which returns once the replica has the writes, by when it has also
fsynced them). With ``appendfsync everysec`` an fsync is up to a second away anyway.

If the copies are not confirmed within ``HERALD_PUBLISH_WAIT`` (each wait command
has that long: ``fsync`` with replicas may wait twice as long in all) the publish
raises :class:`~streams.errors.NotDurableError` — the entries may be in the log, so
publish again with the same idempotency key (which answers the first append).

What Redis promises, honestly: WAIT makes losing an acknowledged write on failover
unlikely, not impossible — a replica that has the entry may still not be the one
promoted, and a failover decided on stale information can discard it (Redis Cluster
is not strongly consistent). ``fsync`` adds that a restart of a node does not lose
it. scripts/bench_cluster.py measures acknowledged-but-lost after kills for each.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from herald.streams.connection import Batch, is_cluster
from herald.streams.errors import NotDurableError
from herald.streams.settings import Settings


class Durability:
    """The wait commands a round of appends ends with, and the check of their replies."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.publish_durability
        self.replicas = settings.publish_replicas
        self.wait_ms = max(1, int(settings.publish_wait_s * 1000))

    @property
    def waits(self) -> bool:
        return self.mode != "leader"

    def command(self) -> list[tuple[Any, ...]]:
        """The wait commands for one server (see the module docstring for the WAIT)."""
        wait = ("WAIT", self.replicas, self.wait_ms)
        if self.mode == "replica":
            return [wait]
        return [*([wait] if self.replicas else []), ("WAITAOF", 1, self.replicas, self.wait_ms)]

    def commands(self, redis: Any, streams: Iterable[str]) -> list[tuple[tuple[Any, ...], Any]]:
        """``(command, target node or None)``: the waits of every server the streams
        live on."""
        if not self.waits:
            return []
        if not is_cluster(redis):
            return [(command, None) for command in self.command()]
        nodes = {}
        for stream in streams:
            node = redis.get_node_from_key(stream)
            nodes[node.name] = node
        return [(command, node) for node in nodes.values() for command in self.command()]

    def check(self, written: Iterable[Any], replies: Iterable[Any]) -> None:
        """Raise NotDurableError unless every wait confirmed enough copies — when the
        round wrote something (``written``: the appends' replies; a round refused
        whole, e.g. NOSCRIPT before the script is loaded, is sent again)."""
        if not any(not isinstance(w, Exception) for w in written):
            return
        for reply in replies:
            if isinstance(reply, Exception):
                raise NotDurableError(f"the durability wait failed: {reply}")
            if isinstance(reply, list):  # WAITAOF: [local fsyncs, replica fsyncs]
                local, copies, what = int(reply[0]), int(reply[1]), "an fsync"
            else:  # WAIT: replicas that have the writes
                local, copies, what = 1, int(reply), "a copy"
            if local < 1 or copies < self.replicas:
                raise NotDurableError(
                    f"appended, but {copies} of {self.replicas} replica(s)"
                    f"{'' if local else ' and not the primary'} confirmed "
                    f"{what} within "
                    f"{self.wait_ms} ms (HERALD_PUBLISH_DURABILITY={self.mode}); "
                    "publish again with the same idempotency key")


FENCE_FIELD = "fenced_at"  # the write a fence waits for (a field of Keys.archive_state)


async def fence(redis: Any, key: str, timeout_ms: int = 5_000) -> bool:
    """Wait until everything the server holding ``key`` applied so far is in its
    append-only file on disk; False when the server keeps no append-only file (nothing
    it holds survives a restart, so there is nothing to wait for).

    Retention calls it before a snapshot or an archive segment leaves Redis for a file:
    with ``appendfsync everysec`` a power loss takes back up to a second of writes, and
    a file written from that second would hold entries the log no longer has (replay
    would rebuild notifications live state never saw). WAITAOF counts this
    connection's writes, so the fence writes ``FENCE_FIELD`` of ``key`` (a hash in the
    slot whose writes it orders behind) and waits in the same round trip; the append-
    only file is written in order, so its fsync covers every earlier write. Raises
    NotDurableError when the fsync is not confirmed within ``timeout_ms``."""
    batch = Batch(redis)
    batch.execute_command("HSET", key, FENCE_FIELD, int(time.time() * 1000))
    node = None
    if is_cluster(redis):
        await redis.initialize()  # the slot map (a new client has none yet)
        node = redis.get_node_from_key(key)
    batch.execute_command("WAITAOF", 1, 0, timeout_ms, **({"target_nodes": node} if node else {}))
    written, reply = await batch.execute()
    if isinstance(written, Exception):
        raise written
    if isinstance(reply, Exception):
        if "appendonly is disabled" in str(reply):
            return False
        raise NotDurableError(f"the fsync before leaving Redis failed: {reply}")
    if int(reply[0]) < 1:
        raise NotDurableError(f"no fsync of the append-only file within {timeout_ms} ms")
    return True


async def run_id(redis: Any, key: str) -> str:
    """The run id of the server process that serves ``key``: a different one later
    means it restarted (or failed over) meanwhile, and what it held since the last
    fsync may be gone (retention checks it around a snapshot)."""
    if is_cluster(redis):
        await redis.initialize()
        node = redis.get_node_from_key(key)
        info = await redis.execute_command("INFO", "server", target_nodes=node)
    else:
        info = await redis.execute_command("INFO", "server")
    if isinstance(info, dict) and "run_id" not in info and len(info) == 1:
        info = next(iter(info.values()))  # a Cluster client keys replies by node
    return str(info["run_id"])
