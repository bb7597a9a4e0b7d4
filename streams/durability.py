"""When a publish is acknowledged: ``HERALD_PUBLISH_DURABILITY``.

- ``leader`` (default): once the primary that serves the partition applied the
  append. A primary that fails before its replica copied the entry loses it, and a
  promoted replica does not have it: Redis replication is asynchronous.
- ``replica``: also once ``HERALD_PUBLISH_REPLICAS`` replicas have it (``WAIT``).
- ``fsync``: once it is in the primary's append-only file on disk and in that many
  replicas' (``WAITAOF``); with 0 replicas, the primary's disk alone.

The wait goes in the same round trip as the appends, on the same connection (WAIT
and WAITAOF count that connection's writes): one per server written to on a
Cluster. If the copies are not confirmed within ``HERALD_PUBLISH_WAIT`` the publish
raises :class:`~streams.errors.NotDurableError` — the entries may be in the log, so
publish again with the same idempotency key (which answers the first append).

What Redis promises, honestly: WAIT makes losing an acknowledged write on failover
unlikely, not impossible — a replica that has the entry may still not be the one
promoted, and a failover decided on stale information can discard it (Redis Cluster
is not strongly consistent). ``fsync`` adds that a restart of a node does not lose
it. scripts/bench_cluster.py measures acknowledged-but-lost after kills for each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from herald.streams.connection import is_cluster
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

    def command(self) -> tuple[Any, ...]:
        if self.mode == "replica":
            return ("WAIT", self.replicas, self.wait_ms)
        return ("WAITAOF", 1, self.replicas, self.wait_ms)

    def commands(self, redis: Any, streams: Iterable[str]) -> list[tuple[tuple[Any, ...], Any]]:
        """``(command, target node or None)``: one wait per server the streams live on."""
        if not self.waits:
            return []
        if not is_cluster(redis):
            return [(self.command(), None)]
        nodes = {}
        for stream in streams:
            node = redis.get_node_from_key(stream)
            nodes[node.name] = node
        return [(self.command(), node) for node in nodes.values()]

    def check(self, written: Iterable[Any], replies: Iterable[Any]) -> None:
        """Raise NotDurableError unless every wait confirmed enough copies — when the
        round wrote something (``written``: the appends' replies; a round refused
        whole, e.g. NOSCRIPT before the script is loaded, is sent again)."""
        if not any(not isinstance(w, Exception) for w in written):
            return
        for reply in replies:
            if isinstance(reply, Exception):
                raise NotDurableError(f"the durability wait failed: {reply}")
            if self.mode == "replica":
                copies, local = int(reply), 1
            else:
                local, copies = int(reply[0]), int(reply[1])
            if local < 1 or copies < self.replicas:
                raise NotDurableError(
                    f"appended, but {copies} of {self.replicas} replica(s)"
                    f"{'' if local else ' and not the primary'} confirmed "
                    f"{'a copy' if self.mode == 'replica' else 'an fsync'} within "
                    f"{self.wait_ms} ms (HERALD_PUBLISH_DURABILITY={self.mode}); "
                    "publish again with the same idempotency key")
