"""Delivery workers: one consumer group per channel, many processes, many sends each.

``herald worker --roles webhook,sms,wechat,email,push`` runs, per named channel, one
consumer of that channel's group (consumers/group/runtime.py: partition leases,
batched reads, claims of a dead consumer's pending entries, acks) whose handler
is :class:`DeliveryHandler`, plus a retry poller over the retry queues of the
partitions this consumer currently holds. Any number of processes may run a
channel: the partitions are shared out by the leases. Inside a process, at most
HERALD_DELIVERY_CONCURRENCY sends of a channel are in flight at once.

The handler acks an entry once its delivery is decided and recorded (sent,
skipped, expired, failed, or handed to the retry queue); see
consumers/delivery/dispatch.py for the steps and the crash guarantees. The
in-app channel is the projector's inbox, not a role here.

Failure modes: an entry that looks like a created notification for the channel and
breaks a rule of the protocol (streams/entries.py), or repeats an event id the
projector applied (a duplicate), is dead-lettered with the reason;
a projector that is behind (ProjectorBehindError), a Redis error or a lost lease
leaves the batch pending, redelivered later. Retry-poller errors are logged and
retried; jobs it had taken reappear after their visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

from herald.consumers.aio import check_cancelled, sleep_unless
from herald.consumers.channels import CHANNEL_NAMES, Channel, open_channel
from herald.consumers.delivery.dispatch import Dispatcher
from herald.consumers.delivery.jobs import Job, job_for, might_concern
from herald.consumers.group.handler import OK, DeadLetter, Entry, Handler, HandlerFactory, Outcome
from herald.consumers.group.runtime import BLOCK_MS, REDIS_ERRORS, GroupRuntime
from herald.consumers.projection.applier import duplicate_reason
from herald.streams import sealing
from herald.streams.crypto import CryptoError
from herald.streams.entries import EntryReader
from herald.streams.errors import EntryRejectedError
from herald.streams.keystore import KeyStore
from herald.streams.log import get_logger
from herald.streams.producer import now_ms
from herald.streams.settings import Settings

POLL_S = 0.05  # shortest pause between looks at the retry queues of owned partitions
POLL_IDLE_S = 10.0  # longest pause (queues empty or nothing due soon): jobs this process
# queues and partitions it gains wake it earlier
TAKE_LIMIT = 500  # jobs taken from one partition's queue at a time
VISIBILITY_MIN_S = 60.0  # a taken job reappears after max(this, 4 x the channel's timeout)
POLL_BACKOFF_MAX_S = 5.0

log = get_logger(__name__)


def send_timeout_s(settings: Settings, channel: str) -> float:
    return {"webhook": settings.webhook_timeout_s, "sms": settings.sms_timeout_s,
            "wechat": settings.wechat_timeout_s, "email": settings.smtp_timeout_s,
            "push": settings.push_timeout_s}.get(channel, 30.0)


class DeliveryHandler:
    """Runtime handler of one channel's group (consumers/group/handler.py)."""

    claim_min_idle_ms: int | None = 0  # partitions are leased: a new owner claims at once

    def __init__(self, settings: Settings, redis: Any, consumer: str, channel_name: str, *,
                 channel: Channel | None = None) -> None:
        self.group = channel_name
        self.consumer = consumer
        self.settings = settings
        self.channel = channel or open_channel(channel_name, settings, redis)
        self.dispatcher = Dispatcher(settings, redis, self.channel)
        self.data_keys = KeyStore(redis, settings)
        self.visibility_ms = int(max(VISIBILITY_MIN_S,
                                     4 * send_timeout_s(settings, channel_name)) * 1000)
        self._mark = channel_name.encode()
        self.reader = EntryReader(settings)

    async def handle(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        return await self._handle(partition, entries, offered_again=False)

    async def retry(self, partition: int, entries: Sequence[Entry]) -> Sequence[Outcome]:
        """``herald dlq retry``: dead letters offered again, each checked for repeats."""
        return await self._handle(partition, entries, offered_again=True)

    async def _handle(self, partition: int, entries: Sequence[Entry], *,
                      offered_again: bool) -> list[Outcome]:
        outcomes: list[Outcome] = [OK] * len(entries)
        jobs: list[tuple[int, str, Job]] = []  # (entry index, event id, job)
        for i, entry in enumerate(entries):
            raw = entry.raw
            if raw is None or not might_concern(raw, self._mark):
                continue
            try:
                env = self.reader.read(raw, partition)
                opened = await sealing.opened(self.data_keys, env)
                job = job_for(opened or env, entry.position, self.group, erased=opened is None)
            except EntryRejectedError as exc:
                outcomes[i] = DeadLetter(str(exc))
                continue
            except CryptoError as exc:
                outcomes[i] = DeadLetter(f"unsealable: {exc}")
                continue
            if job is not None:
                jobs.append((i, env.id, job))
        if not jobs:
            return outcomes
        firsts = await self.dispatcher.state.applied_at(
            partition, [(event_id, job.position) for _, event_id, job in jobs])
        kept: list[Job] = []
        redelivered: set[str] = set()
        for (i, _, job), first in zip(jobs, firsts, strict=True):
            if first is not None and first != job.position:
                outcomes[i] = DeadLetter(duplicate_reason(first))
                continue
            kept.append(job)
            # Checked for a recorded outcome before sending: offered again, delivered
            # again, or an entry the projector's record says nothing of (it is a window
            # ahead): a duplicate of a sent notification is then not sent twice.
            if offered_again or entries[i].deliveries > 1 or first is None:
                redelivered.add(job.notification_id)
        if kept:
            await self.dispatcher.fresh(partition, kept, redelivered)
        return outcomes

    async def poll(self, owned: Callable[[], set[int]], stop: asyncio.Event,
                   gained: asyncio.Event | None = None) -> None:
        """Send due retry-queue jobs of the owned partitions until ``stop``.

        Sleeps until the earliest due job (at least POLL_S, at most POLL_IDLE_S), until
        this process queues a job, or until ``gained`` says partitions were taken over
        (their queues hold jobs another consumer left).
        """
        gained = gained or asyncio.Event()
        busy: dict[int, asyncio.Task[None]] = {}
        backoff = POLL_S
        queue = self.dispatcher.queue
        try:
            while not stop.is_set():
                free = sorted(p for p in owned() if p not in busy)
                queue.added.clear()
                gained.clear()
                try:
                    now = now_ms()
                    taken, next_due = await queue.take(free, now, TAKE_LIMIT,
                                                       self.visibility_ms)
                    check_cancelled()  # redis-py may have swallowed a cancel (consumers/aio.py)
                    backoff = POLL_S
                    wait = POLL_IDLE_S if next_due is None else (next_due - now) / 1000
                    wait = min(max(wait, POLL_S), POLL_IDLE_S)
                except REDIS_ERRORS as exc:
                    log.warning("retry_poll_failed", group=self.group, error=str(exc))
                    taken = {}
                    backoff = wait = min(backoff * 2, POLL_BACKOFF_MAX_S)
                for p, jobs in taken.items():
                    task = asyncio.create_task(self._retried(p, jobs),
                                               name=f"{self.group}-retry-{p}")
                    busy[p] = task
                    task.add_done_callback(functools.partial(_forget, busy, p))
                if busy:  # a busy partition may have more due once its batch is done
                    wait = POLL_S
                await sleep_unless(stop, wait, queue.added, gained)
            if busy:
                await asyncio.gather(*busy.values(), return_exceptions=True)
        finally:
            for task in list(busy.values()):
                task.cancel()

    async def _retried(self, partition: int, jobs: list[Job]) -> None:
        try:
            await self.dispatcher.retried(partition, jobs)
        except Exception as exc:
            log.error("retry_batch_failed", group=self.group, partition=partition,
                      jobs=len(jobs), error=repr(exc),
                      exc_info=exc if not isinstance(exc, REDIS_ERRORS) else None)

    async def aclose(self) -> None:
        await self.channel.aclose()


def _forget(busy: dict[int, asyncio.Task[None]], partition: int, _task: object) -> None:
    busy.pop(partition, None)


def handler_factory(channel_name: str, channel: Channel | None = None) -> HandlerFactory:
    def factory(settings: Settings, redis: Any, consumer: str) -> Handler:
        return DeliveryHandler(settings, redis, consumer, channel_name, channel=channel)

    return factory


async def run_channel(
    channel_name: str, settings: Settings, redis: Any, stop: asyncio.Event, *,
    partitions: Sequence[int] | None = None, consumer: str | None = None,
    channel: Channel | None = None, block_ms: int = BLOCK_MS,
) -> None:
    """One channel's role until ``stop``: the group's consumer plus the retry poller.

    Cancelling is a crash as far as Redis can tell (see consumers/group/runtime.py).
    """
    runtime = GroupRuntime(settings, redis, handler_factory(channel_name, channel),
                           partitions=partitions, consumer=consumer, block_ms=block_ms)
    handler: DeliveryHandler = runtime.handler  # type: ignore[assignment]
    poller = asyncio.create_task(handler.poll(lambda: set(runtime.leases.owned), stop,
                                              runtime.gained),
                                 name=f"{channel_name}-retry-poller")
    try:
        await runtime.run(stop)
        await poller
    finally:
        if not poller.done():
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poller
        with contextlib.suppress(Exception):
            await handler.aclose()


def role(channel_name: str) -> Callable[[Settings, Any, asyncio.Event], Any]:
    """The ``herald worker`` role of a channel."""

    async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
        await run_channel(channel_name, settings, redis, stop)

    run.__name__ = f"run_{channel_name}"
    return run


CHANNEL_ROLES: tuple[str, ...] = CHANNEL_NAMES
