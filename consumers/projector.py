"""The projector: the consumer group that turns the log into inboxes and read state.

:class:`ProjectorHandler` is the runtime handler (consumers/handler.py): decode,
check and project a partition's batch (consumers/applier.py ``Preparer``), then
apply it with the checkpoint in one fenced script. An undecodable entry, an unknown
type or version, a user of another partition, or an event a projection refuses is
dead-lettered with its reason; the rest of the batch flows.

The namespace a partition's view lives in is cached per partition and refreshed
when the script answers that ``herald replay`` switched it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.exceptions

from consumers.applier import GROUP, LATE, LIVE, Applier, Preparer
from consumers.errors import GroupMissingError, LeaseLostError, PendingGapError
from consumers.handler import Entry, Outcome
from consumers.runtime import GroupRuntime
from consumers.views import Views
from streams.settings import Settings

NS_RETRIES = 5  # a view switched more often than this during one batch is a bug


class ProjectorHandler:
    """Handler of the ``projector`` group."""

    group = GROUP
    claim_min_idle_ms: int | None = 0  # strict log order: claim everything at takeover

    def __init__(self, settings: Settings, redis: Any, consumer: str) -> None:
        self.consumer = consumer
        self.preparer = Preparer(settings)
        self.applier = Applier(redis, settings)
        self.views = Views(redis, settings)

    async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        """Apply (checkpoint included) without acking; the caller settles."""
        return await self._apply(partition, entries, LIVE)

    async def handle_settled(
        self, partition: int, entries: Sequence[Entry], preset: Sequence[Outcome]
    ) -> Sequence[Outcome]:
        """Apply, dead-letter and ack in one script (see consumers/handler.py)."""
        return await self._apply(partition, entries, LIVE, preset)

    async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        """Apply dead letters late: at their own positions, checkpoint untouched."""
        return await self._apply(partition, entries, LATE)

    async def _apply(
        self, partition: int, entries: Sequence[Entry], mode: str,
        preset: Sequence[Outcome] | None = None,
    ) -> list[Outcome]:
        ns = await self.views.ns(partition)
        todo = entries if preset is None else \
            [e for e, o in zip(entries, preset, strict=True) if o is None]
        for _ in range(NS_RETRIES):
            batch = self.preparer.prepare(partition, ns, todo)
            outcomes = batch.outcomes
            if preset is not None:
                done = iter(batch.outcomes)
                outcomes = [next(done) if o is None else o for o in preset]
                batch.first, batch.target = entries[0].position, entries[-1].position
                batch.settle = Applier.settlement(entries, outcomes)
            try:
                result = await self.applier.apply(
                    partition, ns, batch, mode=mode, consumer=self.consumer
                )
            except redis.exceptions.ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    raise GroupMissingError(self.applier.keys.stream(partition), GROUP) from exc
                raise
            if result.status == "ok":
                return outcomes
            if result.status == "fenced":
                raise LeaseLostError(partition, GROUP)
            if result.status == "gap":
                raise PendingGapError(partition, result.ns)
            ns = self.views.remember(partition, result.ns)
        raise RuntimeError(f"view of partition {partition} keeps switching")


def projector_factory(settings: Settings, redis: Any, consumer: str) -> ProjectorHandler:
    return ProjectorHandler(settings, redis, consumer)


async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
    """The ``projector`` role: one runtime over every partition until ``stop``."""
    await GroupRuntime(settings, redis, projector_factory).run(stop)
