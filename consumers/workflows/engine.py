"""The ``workflows`` role: every decision a run takes, appended to the log as an event.

A consumer group over every partition (consumers/group/runtime.py: leases, one owner
per partition, entries in log order). It acts on four kinds of entry of the run's
user — ``workflow.triggered`` (a run starts), ``workflow.timer_fired`` (the
scheduler: a delay ended or a wait timed out), ``business.event`` (a wait may match,
a ``cancel_on`` may stop the run) and ``schedule.cancelled`` by cancel key — and
for each one appends what the run does (consumers/workflows/steps.py): a
``notification.created`` per ``send`` (the delivery groups send it, exactly once per
notification and channel, as any notification), ``workflow.step_decided`` (sent,
skipped with the condition's inputs and result, delayed, elapsed, waiting, matched,
timed out) and ``workflow.run_ended``.

Decisions are taken as of the handled entry's position: before deciding, the role
waits until the projector has applied the partition past that entry and past every
event this role appended there (:meth:`WorkflowHandler._caught_up`), then reads the
run (consumers/workflows/state.py), counting reads and deliveries only up to the
entry. Every appended event carries an idempotency key naming the run, the step and
the outcome, so an entry handled again after a crash appends nothing twice.

Failure modes: a definition version that is missing, or a condition that does not
evaluate, ends the run ``failed`` with the reason; an entry that breaks the protocol
is dead-lettered; a projector that stays behind longer than :data:`CATCH_UP_S`, a
Redis error or a lost lease leave the batch pending (handled again later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from herald.consumers.errors import ConsumerError
from herald.consumers.group.handler import OK, DeadLetter, Entry, Handler, Outcome
from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.applier import GROUP as PROJECTOR
from herald.consumers.projection.views import Views, ns_of
from herald.consumers.workflows.state import Run, load_runs
from herald.consumers.workflows.steps import Decider
from herald.streams import positions, sealing
from herald.streams.connection import text
from herald.streams.crypto import CryptoError
from herald.streams.entries import EntryReader, EntryRejectedError
from herald.streams.events import (
    BusinessEventReceived,
    Envelope,
    ScheduleCancelled,
    WorkflowTimerFired,
    WorkflowTriggered,
)
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.log import get_logger
from herald.streams.producer import Producer
from herald.streams.settings import Settings

GROUP = "workflows"
CATCH_UP_S = 10.0  # longest wait for the projector before the batch is handed back
POLL_MAX_S = 0.01  # longest pause between two looks at the projector's checkpoint
LANES = 8
_MARKS = (WorkflowTriggered.TYPE.encode(), WorkflowTimerFired.TYPE.encode(),
          BusinessEventReceived.TYPE.encode(), ScheduleCancelled.TYPE.encode())

log = get_logger(__name__)


class ProjectorBehind(ConsumerError):
    """Raised when the projector has not caught up within :data:`CATCH_UP_S` (the batch
    is handed back to the runtime and handled again)."""


def might_concern(raw: bytes) -> bool:
    """A cheap look at the bytes: could the entry be one this role acts on?"""
    return any(mark in raw for mark in _MARKS)


class WorkflowHandler:
    """Runtime handler of the ``workflows`` group (consumers/group/handler.py)."""

    group = GROUP
    claim_min_idle_ms: int | None = 0  # strict per-partition order, like the projector
    # Partitions are independent and a batch waits on the projector and on two appends:
    # many lanes overlap those waits (consumers/group/handler.py).
    lanes = LANES

    def __init__(self, settings: Settings, redis: Any, consumer: str) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.views = Views(redis, settings)
        self.reader = EntryReader(settings)
        self.data_keys = KeyStore(redis, settings)
        self.producer = Producer(redis, settings)
        self.decider = Decider(settings, redis, self.producer)
        self._tail: dict[int, str] = {}  # newest position this handler appended, per partition
        self._log = log.bind(group=GROUP, consumer=consumer)

    async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = [OK] * len(entries)
        todo: list[tuple[str, Envelope]] = []
        for i, entry in enumerate(entries):
            if entry.raw is None or not might_concern(entry.raw):
                continue
            try:
                env = self.reader.read(entry.raw, partition)
                # only a business event's data is read here (a run's own data is read
                # with the run): nothing else is opened
                opened = await sealing.opened(self.data_keys, env) \
                    if isinstance(env.payload, BusinessEventReceived) else env
            except EntryRejectedError as exc:
                outcomes[i] = DeadLetter(str(exc))
                continue
            except CryptoError as exc:
                outcomes[i] = DeadLetter(f"unsealable: {exc}")
                continue
            if opened is not None and isinstance(opened.payload, (
                    WorkflowTriggered, WorkflowTimerFired, BusinessEventReceived,
                    ScheduleCancelled)):
                todo.append((entry.position, opened))
        if todo:
            await self._decide(partition, todo)
        return outcomes

    async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        return await self.handle(partition, entries)

    async def _decide(self, p: int, todo: list[tuple[str, Envelope]]) -> None:
        """Decide a batch's entries in order, each run read once (module doc)."""
        last = todo[-1][0]
        if p not in self._tail:  # taken over: decisions of an earlier owner may be anywhere
            newest = await self.redis.xrevrange(self.keys.stream(p), count=1)
            self._tail[p] = text(newest[0][0]) if newest else last
        ns = await self._caught_up(p, max(last, self._tail[p], key=positions.parse))
        wanted: dict[str, None] = {}
        users: dict[str, None] = {}
        for _position, env in todo:
            payload = env.payload
            if isinstance(payload, WorkflowTriggered):
                wanted[env.id] = None
            elif isinstance(payload, WorkflowTimerFired):
                wanted[payload.run_id] = None
            else:
                users[env.user] = None
        by_user: dict[str, list[str]] = {}
        if users:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.smembers(self.keys.workflow_user_runs(p, user, ns))
                replies = await pipe.execute()
            for user, members in zip(users, replies, strict=True):
                by_user[user] = sorted(text(m) for m in members)
                wanted.update(dict.fromkeys(by_user[user]))
        runs = await self._runs(p, ns, list(wanted))
        plans: list[tuple[str, Envelope, list[Run]]] = []
        for position, env in todo:
            payload = env.payload
            if isinstance(payload, WorkflowTriggered):
                ids = [env.id]
            elif isinstance(payload, WorkflowTimerFired):
                ids = [payload.run_id]
            else:
                ids = by_user.get(env.user, [])
            plans.append((position, env, [runs[i] for i in ids if i in runs]))
        appended = await self.decider.decide(p, ns, plans)
        if appended:
            self._tail[p] = max(appended, key=positions.parse)

    async def _runs(self, p: int, ns: str, ids: list[str]) -> dict[str, Run]:
        return await load_runs(self.redis, self.keys, self.data_keys, p, ns, ids)

    async def _caught_up(self, p: int, target: str) -> str:
        """The partition's namespace once the projector's checkpoint reaches ``target``."""
        want = positions.parse(target)
        deadline = time.monotonic() + CATCH_UP_S
        delay = 0.002
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.partition_view(p))
                ns = self.views.cached(p)
                pipe.get(self.keys.checkpoint(p, ns, PROJECTOR))
                view, checkpoint = await pipe.execute()
            actual = ns_of(view)
            if actual != ns:
                self.views.remember(p, actual)
                continue
            if checkpoint is not None and positions.parse(text(checkpoint)) >= want:
                return ns
            if time.monotonic() > deadline:
                raise ProjectorBehind(f"the projector has not applied partition {p} up to "
                                      f"{target} within {CATCH_UP_S:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)

    async def aclose(self) -> None:
        return None


def factory(settings: Settings, redis: Any, consumer: str) -> Handler:
    return WorkflowHandler(settings, redis, consumer)


async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
    """The ``workflows`` role until ``stop``."""
    runtime = GroupRuntime(settings, redis, factory)
    await runtime.run(stop)
