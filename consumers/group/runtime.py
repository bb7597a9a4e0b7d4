"""The consumer-group runtime: leases, batched reads, recovery, dead letters, acks.

One :class:`GroupRuntime` runs one consumer of one group (the projector, or one
delivery channel) with a handler (interface and contract: consumers/group/handler.py;
in short ``async handle(partition, entries) -> [OK | DeadLetter(reason)]``).

Loop, per cycle (reading is planned by consumers/group/intake.py):
1. Partitions gained since the last cycle are recovered first: every pending entry
   of the group is claimed (XAUTOCLAIM, min idle per handler; 0 for the projector)
   and this consumer's PEL is re-read from ``0`` in log order; only when it is empty
   are new entries read. The same recovery runs after a failed batch, after a
   ``PendingGapError``, and every ``claim_idle_s`` for entries others left behind.
2. New entries: one XREADGROUP over all owned partitions, ``read_batch`` each (at
   most ``ROUND_ENTRIES`` in all), blocking up to ``block_ms``; the next read is in
   flight while this round is handled.
3. Each partition's batch goes to the handler (partitions concurrently, one batch
   per partition at a time); entries delivered more than ``HERALD_MAX_DELIVERIES``
   times are dead-lettered without calling it.
4. Settle: ack the batch and write its dead letters in one step, fenced by the
   lease (consumers/group/dead_letters.py) — or, for a handler with ``start_settled``
   (the projector), inside the handler's own atomic write.

A handler with ``start_settled`` is pipelined: it returns once a round's writes are
sent, and when the next round is a read-ahead already in (``Intake.ready``) that
round is sent before the previous round's results are taken, so Python prepares
round N+1 while Redis applies the end of round N (the handler keeps each partition's
rounds in order). Anything else — recovery due, no read-ahead, the lane losing its
partitions, a stop — takes the results first, so nothing re-reads entries a round in
flight is applying. Results are taken in round order; counting, lease loss, gaps and
failures are handled as they come.

A separate task renews leases and balances partitions (consumers/group/lease.py); for an
ordered handler it also looks for pending entries another consumer holds on an owned
partition (an ex-owner's blocking read can receive entries after a takeover) and
recovers them, so they are applied before anything newer.

Failure modes: Redis errors (connection lost, server restarting, BUSY…) are
logged and retried after a back-off doubling from 0.1 s to 5 s (streams/connection.py
``Backoff``); the client reconnects by itself once the server is back.
A handler exception leaves its batch pending (redelivered later, counted). A lost
lease drops the partition without acking. A vanished group raises
:class:`GroupMissingError` out of :meth:`GroupRuntime.run`.

Stopping: set the ``stop`` event — the current batch (and a round in flight)
finishes and is acked, leases are released, the consumer leaves the member set.
Cancelling the task instead is a crash as far as Redis can tell: nothing is released,
leases expire, others take over and redeliver (this is what the crash tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from herald.consumers.aio import check_cancelled, consumer_name, sleep_unless
from herald.consumers.errors import (
    GroupMissingError,
    LeaseLostError,
    LogRegressedError,
    PendingGapError,
)
from herald.consumers.group.dead_letters import DeadLetters
from herald.consumers.group.handler import DeadLetter, Entry, HandlerFactory, Outcome
from herald.consumers.group.intake import Batches, Intake
from herald.consumers.group.lease import LeaseChanges, Leases
from herald.consumers.group.reads import StreamGroup
from herald.consumers.metrics import consumer_metrics
from herald.streams.connection import REDIS_ERRORS, STORE_ERRORS, Backoff
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.settings import Settings

BACKOFF_INITIAL_S = 0.1  # waits after a Redis error double from this ...
BACKOFF_MAX_S = 5.0  # ... to this (streams/connection.py Backoff)
BLOCK_MS = 5000  # longest blocking read (a stop or a lease change cuts it short): an
# idle lane wakes this often (on a Cluster: one read per owned partition). 15 s was
# tried: a stop then waited out the Cluster's per-partition reads (not cut short).
FRESH_S = 10.0  # after a takeover, look this long for entries an ex-owner still read
LANES = 4  # default read/handle loops over disjoint partition subsets: while one lane
# waits for Redis (its read, its work), another runs — a handler may ask for fewer
Results = dict[int, Any]  # partition -> its outcomes, or the exception that failed it

log = get_logger(__name__)


class GroupRuntime:
    """One consumer of one group; see the module docstring."""

    def __init__(
        self, settings: Settings, redis: Any, factory: HandlerFactory, *,
        consumer: str | None = None, partitions: Sequence[int] | None = None,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.consumer = consumer or consumer_name()
        self.handler = factory(settings, redis, self.consumer)
        self.partitions = list(range(settings.partitions) if partitions is None else partitions)
        self.keys = Keys(settings.prefix)
        self.leases = Leases(redis, settings, self.handler.group, self.consumer, self.partitions)
        self.group = StreamGroup(redis, self.keys, self.handler.group, self.consumer)
        self.dead_letters = DeadLetters(redis, settings)
        self.block_ms = block_ms
        self._log = log.bind(group=self.handler.group, consumer=self.consumer)
        idle = self.handler.claim_min_idle_ms
        self.ordered = idle == 0
        lanes = max(1, min(getattr(self.handler, "lanes", LANES), len(self.partitions)))
        self.lanes = [
            Intake(settings, self.group, self.leases,
                   claim_min_idle_ms=int(settings.claim_idle_s * 1000) if idle is None else idle,
                   block_ms=block_ms, log=self._log, lane=i, lanes=lanes,
                   per_partition=settings.redis_cluster)
            for i in range(lanes)
        ]
        self.handled = 0
        self.dead_lettered = 0
        self.gained = asyncio.Event()  # set whenever partitions are taken (for side loops)
        self._fresh: dict[int, float] = {}  # partition -> until when to look for strays
        # partition -> rounds the store failed since its last success (not the entries')
        self._excused: dict[int, int] = {}
        self.metrics = consumer_metrics()  # consumers/metrics.py
        self.metrics.track(self.handler.group)
        self._latency = getattr(self.handler, "publish_latency", False)
        self._to_release: set[int] = set()
        self._start_settled = getattr(self.handler, "start_settled", None)
        # lane -> the round whose scripts are sent but whose results are not yet taken
        self._inflight: dict[int, tuple[asyncio.Task[Results], Batches]] = {}

    def _lane(self, partition: int) -> Intake:
        return self.lanes[partition % len(self.lanes)]

    def _recover(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._lane(p).recover([p])

    def _wake(self) -> None:
        for lane in self.lanes:
            lane.wake.set()

    # ------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (see the module docstring for cancellation)."""
        await self._ensure_groups(stop)
        lease_task = asyncio.create_task(self._lease_loop(stop), name="lease-loop")
        interrupter = asyncio.create_task(self._interrupt_on(stop), name="interrupter")
        lanes = [asyncio.create_task(self._consume_loop(stop, lease_task, lane),
                                     name=f"lane-{lane.lane}") for lane in self.lanes]
        try:
            await asyncio.gather(*lanes)
        except BaseException:
            # A crash (cancelled) keeps leases and pending entries as they are; an
            # error stops the other lanes the same way, then propagates.
            lease_task.cancel()
            interrupter.cancel()
            for task in lanes:
                task.cancel()
            for lane in self.lanes:
                lane.cancel()
            inflight = [round_ for round_, _ in self._inflight.values()]
            for round_ in inflight:
                round_.cancel()
            await asyncio.gather(lease_task, interrupter, *lanes, *inflight,
                                 return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.group.aclose()
            raise
        lease_task.cancel()
        interrupter.cancel()
        with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
            await lease_task
        with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
            await interrupter
        check_cancelled()
        await self._shutdown()

    async def _interrupt_on(self, stop: asyncio.Event) -> None:
        """At ``stop``, cut blocking reads short (a stop waits for no block)."""
        await stop.wait()
        await self.group.interrupt()

    async def _ensure_groups(self, stop: asyncio.Event) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        while True:
            try:
                await self.group.ensure(self.partitions)
                return
            except REDIS_ERRORS as exc:
                if stop.is_set():
                    raise
                wait = backoff.next()
                self._log.warning("redis_unavailable", error=str(exc), retry_in=wait)
                await sleep_unless(stop, wait)

    async def _shutdown(self) -> None:
        await self.group.aclose()
        owned = sorted(self.leases.owned)
        try:
            await self.leases.release(owned)
            await self.leases.leave()
        except REDIS_ERRORS as exc:
            self._log.warning("leases_not_released", error=str(exc), partitions=owned)
        self._log.info("consumer_stopped", handled=self.handled, released=owned)

    async def _consume_loop(
        self, stop: asyncio.Event, lease_task: asyncio.Task[None], lane: Intake
    ) -> None:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        while not stop.is_set():
            check_cancelled()
            if lease_task.done():
                lease_task.result()  # re-raise what killed it
                raise RuntimeError("lease loop ended unexpectedly")
            try:
                failed = await self._cycle(stop, lane)
                check_cancelled()
            except GroupMissingError:
                raise
            except REDIS_ERRORS as exc:
                self._log.warning("redis_unavailable", error=str(exc),
                                  retry_in=backoff.current)
                failed = True
                if isinstance(exc, STORE_ERRORS):
                    self._excuse(lane.owned())
            if failed:
                lane.recover(lane.owned())
                await sleep_unless(stop, backoff.next())
            else:
                backoff.reset()
        try:
            await self._collect_inflight(lane)
        except REDIS_ERRORS as exc:  # left pending: the next owner redelivers
            self._log.warning("round_not_settled", error=str(exc))
        await self._drain_read_ahead(lane)

    async def _drain_read_ahead(self, lane: Intake) -> None:
        """On a graceful stop, handle (and ack) what the lane's last read-ahead returned."""
        try:
            batches = await lane.take_ahead()
            if batches:
                await self._handle_round(batches)
        except REDIS_ERRORS as exc:  # left pending: the next owner redelivers
            self._log.warning("read_ahead_not_handled", error=str(exc))

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        await self.leases.maintain(stop, self._on_lease_changes, self._log)

    async def _on_lease_changes(self, changes: LeaseChanges) -> None:
        for p in changes.acquired:
            self._recover([p])
        if changes.acquired:
            self.gained.set()
        for p in changes.lost:
            self._forget(p)
            self._log.warning("lease_lost", partition=p)
        self._to_release.update(changes.surplus)  # released by the lane, after its round
        now = time.monotonic()
        for p in changes.acquired:
            self._fresh[p] = now + FRESH_S
        stray = await self._foreign_pending() if self.ordered else []
        if changes.acquired or changes.surplus or changes.lost or stray:
            self._wake()
            await self.group.interrupt()  # lanes re-plan what they read now

    async def _foreign_pending(self) -> list[int]:
        """Recover owned partitions where another consumer holds pending entries.

        An ex-owner's blocking read can still receive entries after a takeover; an
        ordered handler must apply them before anything newer. Looked for during
        :data:`FRESH_S` after a partition is taken (the ex-owner's read blocks at most
        ``block_ms``); later, the apply script's gap check still refuses to skip one
        (consumers/projection/applier.py), which sends the partition into recovery.
        """
        now = time.monotonic()
        fresh = sorted(p for p, until in self._fresh.items()
                       if until > now and p in self.leases.owned)
        self._fresh = {p: self._fresh[p] for p in fresh}
        stray = await self.group.foreign_pending(fresh) if fresh else []
        self._recover(stray)
        return stray

    def _forget(self, partition: int) -> None:
        self.leases.owned.discard(partition)
        self._lane(partition).forget(partition)
        self._to_release.discard(partition)

    # -------------------------------------------------------------------- cycle
    async def _cycle(self, stop: asyncio.Event, lane: Intake) -> bool:
        """Read and handle one round of the lane's batches; True when something failed."""
        failed = False
        surplus = [p for p in lane.owned() if p in self._to_release]
        if surplus:  # a round in flight finishes under the leases it was sent with
            failed = await self._collect_inflight(lane)
            await self.leases.release(surplus)
            for p in surplus:
                self._forget(p)
            self._log.info("partitions_released", partitions=surplus)
        if not lane.owned():
            failed = await self._collect_inflight(lane) or failed
            lane.wake.clear()
            await sleep_unless(lane.wake, self.block_ms / 1000)
            return failed
        inflight = self._inflight.get(lane.lane)
        if inflight is not None:  # take its results first unless the next round is in
            await lane.wait_ahead(inflight[0])
            if inflight[0].done() or not lane.ready():
                failed = await self._collect_inflight(lane) or failed
        batches = await lane.next(stop)
        check_cancelled()
        if self._start_settled is None:
            return await self._handle_round(batches)
        started = await self._send_round(batches) if batches else None
        previous = self._inflight.pop(lane.lane, None)
        if started is not None:
            self._inflight[lane.lane] = started
        return await self._collect(previous) or failed

    async def _send_round(self, batches: Batches) -> tuple[asyncio.Task[Results], Batches]:
        """Send a round through ``start_settled``; :meth:`_collect_inflight` takes its results."""
        assert self._start_settled is not None
        early = {p: self._early_outcomes(p, entries) for p, entries in batches.items()}
        return await self._start_settled({p: (batches[p], early[p]) for p in batches}), batches

    async def _collect_inflight(self, lane: Intake) -> bool:
        """Take the results of the lane's round in flight, if any (see :meth:`_account`)."""
        return await self._collect(self._inflight.pop(lane.lane, None))

    async def _collect(self, inflight: tuple[asyncio.Task[Results], Batches] | None) -> bool:
        if inflight is None:
            return False
        task, batches = inflight
        return self._account(batches, await task)

    async def _handle_round(self, batches: Batches) -> bool:
        """Handle and settle one round; True when some partition's batch failed."""
        if self._start_settled is not None:
            if not batches:
                return False
            task, _ = await self._send_round(batches)
            return self._account(batches, await task)
        early = {p: self._early_outcomes(p, entries) for p, entries in batches.items()}
        gathered = await asyncio.gather(
            *(self._handle_partition(p, batches[p], early[p]) for p in batches),
            return_exceptions=True,
        )
        return self._account(batches, dict(zip(batches, gathered, strict=True)))

    def _account(self, batches: Batches, results: Results) -> bool:
        """Count a round's outcomes and act on its errors; True when some partition's
        batch failed."""
        failed = False
        for p, result in results.items():
            if isinstance(result, LeaseLostError):
                self._forget(p)
                self._log.warning("lease_lost", partition=p)
            elif isinstance(result, LogRegressedError):
                self._excuse([p])  # consumers/errors.py ConsumerError.excused
                self._recover([p])
                self._log.warning("log_regressed", partition=p, entry_id=result.position,
                                  detail=str(result))
            elif isinstance(result, PendingGapError):
                self._excuse([p])
                self._recover([p])
                self._log.info("pending_gap", partition=p, entry_id=result.position)
            elif isinstance(result, GroupMissingError):
                raise result
            elif isinstance(result, BaseException):
                failed = True
                if isinstance(result, STORE_ERRORS) or getattr(result, "excused", False):
                    self._excuse([p])
                self._recover([p])
                self._log.error("batch_failed", partition=p, error=repr(result),
                                exc_info=result if not isinstance(result, REDIS_ERRORS) else None)
            else:
                self._excused.pop(p, None)
                self._count(p, batches[p], result)
        return failed

    def _excuse(self, partitions: Iterable[int]) -> None:
        """These partitions' round failed for a reason outside its entries (the store, or
        an excused error, consumers/errors.py): the re-read that follows counts as a
        delivery in Redis, but not toward the delivery limit (:meth:`_early_outcomes`)."""
        for p in partitions:
            self._excused[p] = self._excused.get(p, 0) + 1

    def _early_outcomes(self, partition: int, entries: Sequence[Entry]) -> list[Outcome]:
        """Outcomes decided without the handler: an entry that is not one field ``e``, too
        many deliveries (a deleted entry is acked as it is)."""
        limit = self.settings.max_deliveries
        excused = self._excused.get(partition, 0)  # redeliveries not of the entries' making
        out: list[Outcome] = []
        for entry in entries:
            if entry.problem is not None:
                out.append(DeadLetter(entry.problem))
                continue
            if entry.raw is None:
                self._log.warning("entry_missing", partition=partition, entry_id=entry.position)
            out.append(DeadLetter(f"max_deliveries: delivered {entry.deliveries} times "
                                  f"(limit {limit})") if entry.deliveries - excused > limit
                       else None)
        return out

    async def _handle_partition(
        self, partition: int, entries: Sequence[Entry], early: list[Outcome]
    ) -> list[Outcome]:
        """``handle`` the entries not decided yet, then settle the whole batch."""
        outcomes = list(early)
        index = [i for i, e in enumerate(entries) if early[i] is None and e.raw is not None]
        if index:
            results = await self.handler.handle(partition, [entries[i] for i in index])
            for i, outcome in zip(index, results, strict=True):
                outcomes[i] = outcome
        if not await self.dead_letters.settle(
            partition, self.handler.group, self.consumer, entries, outcomes
        ):
            raise LeaseLostError(partition, self.handler.group)
        return outcomes

    def _count(self, partition: int, entries: Sequence[Entry], outcomes: Sequence[Outcome]
               ) -> None:
        self.handled += len(entries)
        dead = 0
        for entry, outcome in zip(entries, outcomes, strict=True):
            if outcome is not None:
                dead += 1
                self._log.warning("entry_dead_lettered", partition=partition,
                                  entry_id=entry.position, reason=outcome.reason)
        self.dead_lettered += dead
        self.metrics.count(self.handler.group, len(entries), dead)
        if self._latency:
            self.metrics.projected([entry.position for entry in entries])
