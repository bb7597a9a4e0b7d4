"""The projector: the consumer group that turns the log into inboxes and read state.

:class:`ProjectorHandler` is the runtime handler (consumers/group/handler.py): decode,
check and project each partition's batch (consumers/projection/applier.py ``Preparer``), then
apply it with one fenced script that also moves the checkpoint, writes the dead
letters and acks the batch (``start_settled``; a round's calls go in pipelines of
about :data:`APPLY_CHUNK` entries). An undecodable entry, an unknown type or version,
a user of another partition, or an event a projection refuses is dead-lettered with
its reason; the rest of the batch flows.

The namespace a partition's view lives in is cached per partition and refreshed
when the script answers that ``herald replay`` switched it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import redis.exceptions

from herald.consumers.errors import (
    GroupMissingError,
    LeaseLostError,
    LogRegressedError,
    PendingGapError,
)
from herald.consumers.group.handler import Entry, Outcome
from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.applier import (
    GROUP,
    LATE,
    LIVE,
    Applied,
    Applier,
    Prepared,
    Preparer,
)
from herald.consumers.projection.views import Views
from herald.streams.connection import Batch
from herald.streams.settings import Settings

NS_RETRIES = 5  # a view switched more often than this during one batch is a bug
APPLY_CHUNK = 1000  # entries per pipeline of apply calls (see start_settled)


class ProjectorHandler:
    """Handler of the ``projector`` group."""

    group = GROUP
    claim_min_idle_ms: int | None = 0  # strict log order: claim everything at takeover
    # One lane: a script call costs Redis ~65 µs whatever its size plus ~18 µs per
    # entry, so live rounds should gather as many entries per partition as they can;
    # with four lanes each partition was read four times as often (live: 2.9 entries
    # per call, 12.5-15.3k events/s, median 13.7k; one lane: 6.6 per call, 13.6-18.7k,
    # median 16.3k). Catch-up keeps Python and Redis overlapped by sending a round's
    # calls in chunks (start_settled).
    lanes = 1
    publish_latency = True  # its results are the moment an entry is projected

    def __init__(self, settings: Settings, redis: Any, consumer: str) -> None:
        self.consumer = consumer
        self.preparer = Preparer(settings)
        self.applier = Applier(redis, settings)
        self.views = Views(redis, settings)
        # partition -> the pipeline that carries its latest script (see start_settled)
        self._last: dict[int, asyncio.Task[list[tuple[int, list[Outcome], Any]]]] = {}

    async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        """Apply (checkpoint included) without acking; the caller settles."""
        return await self._apply(partition, entries, LIVE)

    async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        """Apply dead letters late: at their own positions, checkpoint untouched."""
        return await self._apply(partition, entries, LATE)

    async def start_settled(
        self, batches: Mapping[int, tuple[Sequence[Entry], Sequence[Outcome]]]
    ) -> asyncio.Task[dict[int, list[Outcome] | BaseException]]:
        """Send a round's scripts (apply, dead-letter, ack: one per partition); a task
        that gives the round's results.

        The scripts go in pipelines of about :data:`APPLY_CHUNK` entries, each sent
        as soon as it is prepared, so Redis applies one chunk while Python prepares
        the next (a live round is one small pipeline; a catch-up round of 64 x 250
        entries is ~16). It returns once all are sent, so the runtime prepares the
        next round while Redis applies the end of this one. Pipelines go on several
        connections, so a partition's script is sent only after the reply to its
        previous one (:meth:`_after_previous`): each partition's rounds apply in log
        order. Should one still arrive early (a view switched under two rounds), the
        script refuses it as a gap and the partition is recovered.
        """
        sent = await self._send_round(batches)
        return asyncio.create_task(self._results(batches, sent))

    async def _send_round(
        self, todo: Mapping[int, tuple[Sequence[Entry], Sequence[Outcome]]]
    ) -> list[asyncio.Task[list[tuple[int, list[Outcome], Any]]]]:
        sent: list[asyncio.Task[list[tuple[int, list[Outcome], Any]]]] = []
        chunk: list[tuple[int, list[Outcome], tuple[list[str], list[Any]]]] = []
        wakes: dict[int, int] = {}
        size = 0
        for p, (entries, early) in todo.items():
            await self._after_previous(p)
            ns = await self.views.ns(p)
            batch, outcomes = self._prepare(p, ns, entries, early)
            chunk.append((p, outcomes, self.applier.call_args(
                p, ns, batch, mode=LIVE, consumer=self.consumer)))
            if batch.due is not None:
                wakes[p] = batch.due
            size += len(entries)
            if size >= APPLY_CHUNK:
                sent.append(self._send_chunk(chunk, wakes))
                await asyncio.sleep(0)  # let it write before preparing the next
                chunk, wakes, size = [], {}, 0
        if chunk:
            sent.append(self._send_chunk(chunk, wakes))
        return sent

    async def _after_previous(self, partition: int) -> None:
        """Until the reply to the partition's previous script has come (any outcome)."""
        previous = self._last.get(partition)
        if previous is not None and not previous.done():
            await asyncio.wait((previous,))

    def _send_chunk(self, calls: list[tuple[int, list[Outcome], tuple[list[str], list[Any]]]],
                    wakes: Mapping[int, int]) -> asyncio.Task[list[tuple[int, list[Outcome], Any]]]:
        task = asyncio.create_task(self._send(calls, wakes))
        for p, _o, _c in calls:
            self._last[p] = task
        return task

    async def _results(
        self, batches: Mapping[int, tuple[Sequence[Entry], Sequence[Outcome]]],
        sent: list[asyncio.Task[list[tuple[int, list[Outcome], Any]]]],
    ) -> dict[int, list[Outcome] | BaseException]:
        """Each partition's outcomes or error; batches sent in a view that replay has
        switched meanwhile are sent again in the new one."""
        out: dict[int, list[Outcome] | BaseException] = {}
        todo = dict(batches)
        for attempt in range(NS_RETRIES):
            if attempt:
                sent = await self._send_round(todo)
            again = {}
            for done in await asyncio.gather(*sent, return_exceptions=True):
                if isinstance(done, BaseException):
                    raise done
                for p, outcomes, reply in done:
                    result = self._verdict(p, reply)
                    if isinstance(result, str):
                        self.views.remember(p, result)
                        again[p] = todo[p]
                    elif isinstance(result, Applied):  # the script wrote the duplicates' letters
                        out[p] = result.marked(todo[p][0], outcomes)
                    else:
                        out[p] = result
            if not again:
                return out
            todo = again
        for p in todo:
            out[p] = RuntimeError(f"view of partition {p} keeps switching")
        return out

    async def _send(self, calls: Sequence[tuple[int, list[Outcome], tuple[list[str], list[Any]]]],
                    wakes: Mapping[int, int] | None = None,
                    ) -> list[tuple[int, list[Outcome], Any]]:
        """One pipeline of apply calls; each call's reply (NOSCRIPT resent). After them,
        in the same round trip, the scheduler's wake-up of each partition whose batch
        added something due (``Keys.schedule_signal``; a hint, its reply ignored)."""
        batch = Batch(self.applier.redis)
        for _p, _o, (keys, args) in calls:
            self.applier.queue(batch, keys, args)
        for p, due in (wakes or {}).items():
            batch.execute_command("SPUBLISH", self.applier.keys.schedule_signal(p), due)
        replies = (await batch.execute())[:len(calls)]
        return [(p, outcomes, await self.applier.resend(reply, *call))
                for (p, outcomes, call), reply in zip(calls, replies, strict=True)]

    def _prepare(self, partition: int, ns: str, entries: Sequence[Entry],
                 early: Sequence[Outcome]) -> tuple[Prepared, list[Outcome]]:
        """The batch (settling every entry) and the outcome of every entry."""
        batch = self.preparer.prepare(
            partition, ns, [e for e, o in zip(entries, early, strict=True) if o is None])
        done = iter(batch.outcomes)
        outcomes = [next(done) if o is None else o for o in early]
        batch.first, batch.target = entries[0].position, entries[-1].position
        batch.settle = Applier.settlement(entries, outcomes)
        return batch, outcomes

    def _verdict(self, partition: int, reply: Any) -> BaseException | str | Applied:
        """The script's answer when applied; the new namespace to retry in; or the error
        to report."""
        if isinstance(reply, BaseException):
            if str(reply).startswith("NOGROUP"):
                return GroupMissingError(self.applier.keys.stream(partition), GROUP)
            return reply
        result = Applier.parse(reply)
        if result.status == "ok":
            return result
        if result.status == "fenced":
            return LeaseLostError(partition, GROUP)
        if result.status == "gap":
            return PendingGapError(partition, result.ns)
        if result.status == "lost":
            return LogRegressedError(partition, result.ns)
        return result.ns

    async def _apply(self, partition: int, entries: Sequence[Entry], mode: str) -> list[Outcome]:
        """One partition, without settling (``handle``, and ``retry`` in late mode)."""
        ns = await self.views.ns(partition)
        for _ in range(NS_RETRIES):
            batch = self.preparer.prepare(partition, ns, entries)
            try:
                reply = await self.applier.call(
                    *self.applier.call_args(partition, ns, batch, mode=mode,
                                            consumer=self.consumer))
            except redis.exceptions.ResponseError as exc:
                reply = exc
            verdict = self._verdict(partition, reply)
            if isinstance(verdict, Applied):
                if batch.due is not None and mode == LIVE:
                    await self.applier.redis.execute_command(
                        "SPUBLISH", self.applier.keys.schedule_signal(partition), batch.due)
                return verdict.marked(entries, batch.outcomes)
            if isinstance(verdict, BaseException):
                raise verdict
            ns = self.views.remember(partition, verdict)
        raise RuntimeError(f"view of partition {partition} keeps switching")


def projector_factory(settings: Settings, redis: Any, consumer: str) -> ProjectorHandler:
    return ProjectorHandler(settings, redis, consumer)


async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
    """The ``projector`` role: one runtime over every partition until ``stop``."""
    await GroupRuntime(settings, redis, projector_factory).run(stop)
