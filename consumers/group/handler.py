"""The handler interface of the consumer-group runtime (see consumers/group/runtime.py).

A handler is what one consumer group does with its entries. The runtime owns
everything else: partition leases, reads, recovery of pending entries, delivery
counts, dead letters and acks.

    class MyHandler:
        group = "webhook"            # the consumer group's name, one per channel
        claim_min_idle_ms = None     # None: settings.claim_idle_s; 0: claim at once

        async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
            ...                      # one outcome per entry, same order
        async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
            ...                      # `herald dlq retry`: dead letters offered again

    def factory(settings: Settings, redis: Any, consumer: str) -> MyHandler: ...

Contract:
- ``handle`` gets one partition's entries in log order, only for partitions whose
  lease this consumer holds, never concurrently for one partition.
- It returns, per entry, ``OK`` (None) or ``DeadLetter(reason)``. The runtime then
  acks them all and writes the dead letters, in one fenced atomic step.
- Raising means "nothing of this batch was done": nothing is acked, the runtime
  backs off and redelivers the batch (each redelivery counts; beyond
  ``HERALD_MAX_DELIVERIES`` an entry is dead-lettered without calling the handler).
  Raise :class:`consumers.errors.LeaseLostError` when a fenced write found another
  owner: the runtime drops the partition.
- ``Entry.raw`` is None when the entry was deleted from the stream; such entries are
  acked by the runtime and never reach ``handle``.
- Optionally ``async start_settled({partition: (entries, early)}) -> Task[{partition:
  outcomes | exception}]``: for each partition, handle the entries whose ``early``
  outcome (decided by the runtime before the handler) is OK and, in the same atomic
  step (fenced by the lease), ack every entry and write every dead letter (the early
  ones and its own). The runtime then calls it once per round instead of ``handle``
  plus its own settle per partition; the projector does (pipelines of one script per
  partition: write, checkpoint, ack). It returns once the round is sent; the task
  gives the results. The runtime may call it for the next round before that task is
  done, so the handler must keep each partition's rounds in order itself. Entries
  with ``raw`` None come with an OK early outcome: ack them, nothing else. An
  exception in the result means what raising from ``handle`` means, for that
  partition only.
- A handler that needs strict per-partition order (the projector) sets
  ``claim_min_idle_ms = 0``: on takeover every pending entry of the group is claimed
  at once and re-read in order. Others may leave pending entries of a slow consumer
  alone until they are ``claim_idle_s`` old.
- ``lanes`` (optional, default ``consumers.group.runtime.LANES``): independent read/handle
  loops over disjoint partition subsets. More lanes overlap one lane's waiting with
  another's work; fewer lanes make each read gather more entries per partition. A
  handler whose cost is per call rather than per entry (the projector: one script
  call per partition per round) wants one (measured: consumers/projection/projector.py).
- ``publish_latency`` (optional, default False): the runtime observes, per handled
  entry, the time from its append to the handler's result in
  ``herald_publish_to_projected_seconds`` (consumers/metrics.py); the projector sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from herald.streams.codec import ENTRY_FIELD, pack_binary
from herald.streams.settings import Settings


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as the runtime hands it over.

    ``problem`` is set (and ``raw`` None) for an entry that is not one field ``e``: the
    runtime dead-letters it with that reason (PROTOCOL.md, "The entry") and its fields,
    packed as a msgpack map, as the letter's bytes (``original``)."""

    position: str
    raw: bytes | None
    deliveries: int = 1
    problem: str | None = None
    original: bytes | None = None

    @property
    def letter_bytes(self) -> bytes:
        """What a dead letter of this entry keeps: its bytes, or its packed fields."""
        return self.raw if self.raw is not None else self.original or b""


def entries_of(rows: Sequence[Any]) -> list[Entry]:
    """Entries of one stream's rows in an XRANGE/XREADGROUP reply: raw, as a
    :class:`streams.connection.Batch` returns them (``[id, [field, value, ...]]``;
    Herald writes the one field ``e``; ``[id, nil]`` for a deleted pending entry), or
    parsed by redis-py (``(id, {field: value})``, a Cluster client's pipeline)."""
    out = []
    for pos, fields in rows:
        position = pos.decode() if type(pos) is bytes else str(pos)
        if not fields:
            out.append(Entry(position, None))
            continue
        if type(fields) is not dict and len(fields) == 2 and fields[0] == ENTRY_FIELD:
            out.append(Entry(position, fields[1]))  # raw, as Herald writes it: the hot path
            continue
        if type(fields) is dict:  # parsed: {field: value}
            names, values = list(fields), list(fields.values())
        else:
            names, values = fields[0::2], fields[1::2]
        if len(names) == 1 and names[0] == ENTRY_FIELD:
            out.append(Entry(position, values[0]))
        else:  # written by something else than Herald
            out.append(Entry(position, None, problem=entry_problem(names),
                             original=pack_binary(dict(zip(names, values, strict=True)))))
    return out


ENTRY_PROBLEM = "malformed: the entry has "  # how entry_problem's reasons start


def entry_problem(names: Sequence[Any]) -> str:
    """The dead letter's reason for an entry whose fields are ``names``, not just ``e``."""
    shown = ", ".join(repr(n.decode(errors="replace") if type(n) is bytes else str(n))
                      for n in names[:5])
    if ENTRY_FIELD not in names:
        return f"{ENTRY_PROBLEM}no field 'e' (its fields: {shown})"
    return f"{ENTRY_PROBLEM}fields besides 'e' (its fields: {shown})"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Outcome: move the entry to the dead-letter stream with ``reason``."""

    reason: str


OK: Final = None
Outcome = DeadLetter | None


class Handler(Protocol):
    group: str
    claim_min_idle_ms: int | None

    async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]: ...

    async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]: ...


HandlerFactory = Callable[[Settings, Any, str], Handler]
