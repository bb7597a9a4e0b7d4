"""What a consumer handles next: pending entries first, then new ones, read ahead.

Per owned partition, :class:`Intake` decides between

- **recovery** — after a takeover, a failed batch, a pending gap, or the periodic
  sweep (every ``claim_idle_s``, of the partitions where XPENDING counts entries of
  another consumer): claim
  the group's pending entries of the partition
  (XAUTOCLAIM, min idle per handler) and re-read this consumer's PEL from ``0`` in log
  order, until it is empty; nothing newer of that partition is handled meanwhile;
- **new entries** — one XREADGROUP over the partitions not in recovery, at most
  ``read_batch`` entries each and :data:`ROUND_ENTRIES` in all. While a round is
  handled, the next read is already in flight (read-ahead), so Redis serving and
  Python parsing the next round overlap with the handling of this one. After a full
  round (some partition gave all it was asked for: a backlog) the read-ahead does not
  block and is split over :data:`BACKLOG_CONNECTIONS` connections; otherwise it is one
  blocking read, as live rounds want. :meth:`Intake.ready` tells the runtime when the
  next round is a read-ahead already in, so it may start that round before the
  current one's results are in (consumers/group/runtime.py).

Why a backlog read is bounded in all and split: its reply is read ahead while the
round is applied, but the server writes a reply only 64 KB at a time per connection
and event-loop turn (``NET_MAX_WRITES_PER_EVENT``), and while it is busy with apply
pipelines its turns are few, so most of a large reply arrived after the round — time
in which the server waited for the consumer (a timeline of server CPU per 50 ms: 20-45 %
in each round's first window, ~100 % otherwise). One projector over 64 partitions
read 64 x 500 = 32,000 entries (~13 MB) a round; capped at 16,000 (250 each) its
catch-up was faster in 16 of 24 alternating pairs, three series of 200k events with
medians +2, +6 and +12 % (this machine's spread between neighbouring runs is larger:
±15 %). The cap also halves what a backlog round holds in memory. Live rounds are far
below it; with fewer partitions per consumer (two projectors: 32 each) it changes
nothing, ``read_batch`` being the lower bound there. Split over 8 connections the reply
is in before the round ends; that alone measured no faster (3 of 6 pairs), but with
the runtime starting the next round early, 8 connections beat 1 in 4 of 6 pairs
(median +6 %), and both together beat neither in 5 of 6 (median +11 %).

Guarantee: a partition's entries reach the handler in log order, each once per
delivery. Read-ahead entries of a partition that was lost or sent into recovery in the
meantime are not handed over; they stay in this consumer's PEL, and the partition
(if still ours) is recovered, which re-reads them in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from herald.consumers.group.handler import Entry
from herald.consumers.group.lease import Leases
from herald.consumers.group.reads import StreamGroup
from herald.streams.settings import Settings

Batches = dict[int, list[Entry]]
ROUND_ENTRIES = 16_000  # new entries one read asks for in all (see the module docstring)
BACKLOG_CONNECTIONS = 8  # a read-ahead after a full round: that many reads at once


class Intake:
    """Read planning of one consumer (see the module docstring)."""

    def __init__(self, settings: Settings, group: StreamGroup, leases: Leases, *,
                 claim_min_idle_ms: int, block_ms: int, per_partition: bool, log: Any,
                 lane: int = 0, lanes: int = 1) -> None:
        self.settings = settings
        self.group = group
        self.leases = leases
        self.lane, self.lanes = lane, lanes
        self.wake = asyncio.Event()
        self.claim_min_idle_ms = claim_min_idle_ms
        self.block_ms = block_ms
        self.per_partition = per_partition
        self.log = log
        self.recovering: set[int] = set()
        self._claimed: set[int] = set()
        self._stale: set[int] = set()  # recovered or lost since the read-ahead started
        self._ahead: asyncio.Task[Batches] | None = None
        self._asked = settings.read_batch  # entries per partition the last read asked for
        self._next_sweep = time.monotonic() + settings.claim_idle_s

    def owned(self) -> list[int]:
        """The owned partitions this intake reads (its lane), in order."""
        return [p for p in sorted(self.leases.owned) if p % self.lanes == self.lane]

    def recover(self, partitions: Iterable[int]) -> None:
        """Claim and re-read these partitions' pending entries before anything new."""
        self.recovering.update(partitions)
        self._stale.update(partitions)
        self._claimed.difference_update(self.recovering)

    def forget(self, partition: int) -> None:
        """The partition is no longer ours."""
        self._stale.add(partition)
        self.recovering.discard(partition)
        self._claimed.discard(partition)

    async def wait_ahead(self, other: asyncio.Future[Any]) -> None:
        """Until the read-ahead has its reply (at once when there is none) or ``other``
        is done."""
        if self._ahead is not None and not self._ahead.done():
            await asyncio.wait((self._ahead, other), return_when=asyncio.FIRST_COMPLETED)

    def ready(self) -> bool:
        """The next round is the read-ahead's and its reply is in: no recovery due, so
        nothing will re-read pending entries a round still in flight is applying."""
        return (not self.recovering and self._ahead is not None and self._ahead.done()
                and time.monotonic() < self._next_sweep)

    def cancel(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()

    async def next(self, stop: asyncio.Event) -> Batches:
        """The next round: recovery batches if any, else new entries (maybe empty)."""
        owned = self.owned()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.settings.claim_idle_s
            # Only where another consumer holds some: this one's own pending entries
            # are a round in flight or its read-ahead, recovered on their own paths;
            # re-reading them here would count one more delivery each sweep.
            holders = await self.group.pending_holders(owned)
            self.recover(p for p, names in holders.items() if names - {self.group.consumer})
        batches = await self._pending([p for p in owned if p in self.recovering])
        if batches:
            return batches
        ahead = await self.take_ahead()
        batches = ahead if ahead is not None else await self._new(wait=not stop.is_set())
        if batches and not stop.is_set():
            self._stale.clear()
            full = max(map(len, batches.values())) >= self._asked
            self._ahead = asyncio.create_task(self._new(backlog=full), name="read-ahead")
        return batches

    async def take_ahead(self) -> Batches | None:
        """The read-ahead's entries minus stale partitions (None: no read-ahead)."""
        task, self._ahead = self._ahead, None
        if task is None:
            return None
        batches = await task
        stale = {p for p in batches if p in self._stale or p not in self.leases.owned}
        self.recovering.update(stale & self.leases.owned)  # they may have come after it
        return {p: entries for p, entries in batches.items() if p not in stale}

    async def _new(self, backlog: bool = False, wait: bool = True) -> Batches:
        fresh = [p for p in self.owned() if p not in self.recovering]
        self._asked = self.count(len(fresh))
        if backlog:  # more is there: do not wait, and split the reply (module docstring)
            return await self.group.read_new(fresh, self._asked, None,
                                             per_partition=self.per_partition,
                                             connections=BACKLOG_CONNECTIONS)
        return await self.group.read_new(
            fresh, self._asked, self.block_ms if wait else None,
            per_partition=self.per_partition, line=f"lane{self.lane}")

    def count(self, partitions: int) -> int:
        """Entries per partition for one read over this many partitions."""
        return max(1, min(self.settings.read_batch, ROUND_ENTRIES // max(1, partitions)))

    async def _pending(self, partitions: Sequence[int]) -> Batches:
        out: Batches = {}
        for p in partitions:
            if p not in self._claimed:
                claimed = await self.group.claim_all(p, self.claim_min_idle_ms)
                self._claimed.add(p)
                if claimed:
                    self.log.info("pending_claimed", partition=p, entries=claimed)
            entries = await self.group.read_pending(p, self.settings.read_batch)
            if entries:
                out[p] = entries
            else:
                self.recovering.discard(p)
        return out
