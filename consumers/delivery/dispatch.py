"""The dispatcher: decide, pace, send and record the jobs of one channel.

Per batch of jobs (fresh from the log, or due in the retry queue):

1. Decide (consumers/delivery/policy.py): expired → DeliveryExpired; opted out, no
   address, disabled endpoint → DeliverySkipped with the reason; inside the user's
   quiet hours (not critical) → deferred to their end. Retried jobs keep their
   recipient, and are checked again for expiry, preferences and quiet hours as they
   are now: a user who opted out while a send waited gets nothing.
2. Pace (HERALD_RATE_LIMITS / HERALD_USER_RATE_LIMITS, consumers/delivery/ratelimit.py):
   a job refused a send slot is put in the retry queue for a later slot without
   using up an attempt — delayed, never dropped. Fresh jobs queue behind jobs
   this process already deferred, spaced at the channel's rate, so a backlog
   after an outage drains at the limit in roughly log order. A critical job never
   queues behind them: it asks for a slot at once (the limiter keeps a reserve for
   critical sends), and when refused waits in the critical queue, taken first.
3. Record DeliveryAttempted for every job about to be sent (one append).
4. Send, at most HERALD_DELIVERY_CONCURRENCY at once per process.
5. Jobs to retry go (back) into the retry queue with the next attempt number and
   an exponential, jittered due time (consumers/delivery/retry.py, Retry-After honoured);
   then the outcomes are recorded (one append); then finished queue jobs are
   removed. A final ``failed`` follows the last attempt; permanent errors
   (4xx other than 429) are never retried; a webhook 410 is a final failure
   whose detail disables that endpoint (consumers/delivery/projection.py). A device
   whose token the provider reported invalid is removed (DeviceRemoved); a push
   retried after a partial send goes only to the devices it did not reach.

Crash safety: every event has a deterministic idempotency key (jobs.py), so a
repeat of any step records nothing twice; a job is put in the queue before the
event that says it will be retried, and removed only after its outcome is
recorded. A crash mid-send means the step is repeated later (the entry is
redelivered or the queued job reappears after its visibility timeout) with the
same idempotency key sent to the provider: delivered at least once. A redelivered
entry whose step already has an outcome, or whose job is queued, is not sent again.
A crash between queueing a retry and recording its DeliveryFailed loses only
that event (the next DeliveryAttempted still counts the attempt).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from herald.consumers.channels.base import Channel, Outcome, SendResult, error_detail
from herald.consumers.delivery.jobs import Job, Recorded
from herald.consumers.delivery.policy import ERASED, decide, opted_out, with_defaults
from herald.consumers.delivery.projection import disabled_detail
from herald.consumers.delivery.quiet import quiet_until
from herald.consumers.delivery.ratelimit import RateLimiter
from herald.consumers.delivery.retry import RetrySchedule
from herald.consumers.delivery.retry_queue import RetryQueue
from herald.consumers.delivery.state import ProjectedState
from herald.consumers.metrics import consumer_metrics
from herald.streams import tenants
from herald.streams.log import get_logger
from herald.streams.producer import Producer, now_ms
from herald.streams.settings import Settings, tenant_preferences

REFUSED_JITTER_MS = 50  # spread for jobs refused at their slot (another process took it)

log = get_logger(__name__)


@dataclass(slots=True)
class Counters:
    """What one dispatcher did since it started (for tests, benchmarks and logs)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    expired: int = 0
    deferred: int = 0
    repeated: int = 0  # redelivered steps found already done


class Dispatcher:
    """One channel's delivery logic in one process (see the module doc)."""

    def __init__(
        self, settings: Settings, redis: Any, channel: Channel, *,
        limiter: RateLimiter | None = None, schedule: RetrySchedule | None = None,
        state: ProjectedState | None = None, gate: asyncio.Semaphore | None = None,
    ) -> None:
        self.settings = settings
        self.channel = channel
        self.name = channel.name
        self.producer = Producer(redis, settings)
        self.limiter = limiter or RateLimiter.from_settings(redis, settings)
        self.schedule = schedule or RetrySchedule.from_settings(settings)
        self.state = state or ProjectedState(redis, settings, devices=channel.name == "push")
        self.contact: str | None = getattr(channel, "contact", None)
        self.queue = RetryQueue(redis, settings, channel.name)
        self.gate = gate or asyncio.Semaphore(settings.delivery_concurrency)
        self.critical = frozenset(settings.critical_categories)
        self.tenant_defaults = tenant_preferences(settings.tenant_preferences)
        self.counters = Counters()
        metrics = consumer_metrics()  # consumers/metrics.py: the same counts for Prometheus
        self._outcomes = {outcome: metrics.deliveries.labels(channel.name, outcome)
                          for outcome in ("sent", "failed", "skipped", "expired")}
        self._retries = metrics.retries.labels(channel.name)
        self._waits = metrics.rate_limit_waits.labels(channel.name)
        buckets = self.limiter.buckets(self.name)
        self.limited = bool(buckets) or bool(self.limiter.buckets(self.name, "-"))
        self.spacing_ms = (buckets[0][1].period_s * 1000 / buckets[0][1].limit) if buckets else 0.0
        self._tail_ms = 0.0  # the next free slot behind the jobs this process deferred
        self._log = log.bind(channel=self.name)

    # -------------------------------------------------------------- entry points
    async def fresh(self, partition: int, jobs: Sequence[Job],
                    redelivered: Collection[str] = ()) -> None:
        """Jobs read from the log; ``redelivered``: notification ids to check for repeats."""
        if redelivered:
            suspects = [job for job in jobs if job.notification_id in redelivered]
            done = await self.state.recorded(partition, suspects)
            done |= await self.queue.queued(partition, [j.notification_id for j in suspects])
            self.counters.repeated += len(done)
            jobs = [job for job in jobs if job.notification_id not in done]
        if not jobs:
            return
        users = await self.state.load(partition, max_position(jobs), {j.user for j in jobs})
        now = now_ms()
        events: list[Recorded] = []
        sendable: list[Job] = []
        held: list[tuple[Job, int]] = []
        for job in jobs:
            user = users[job.user]
            defaults = self.tenant_defaults.get(tenants.tenant_of(job.user) or "-", {})
            decision = decide(job, now, user.profile,
                              with_defaults(user.preferences, defaults), self.critical,
                              contact=self.contact, devices=user.devices,
                              quiet=user.quiet_hours)
            if decision.action == "send":
                sendable.append(decision.job)
            elif decision.action == "defer":
                held.append((decision.job, decision.until))
            elif decision.action == "skip":
                events.append(job.skipped(decision.reason))
                self.counters.skipped += 1
                self._outcomes["skipped"].inc()
            else:
                events.append(job.expired_event())
                self.counters.expired += 1
                self._outcomes["expired"].inc()
        await self._hold(partition, held)
        await self._run(partition, sendable, events, queued=False)

    async def retried(self, partition: int, jobs: Sequence[Job]) -> None:
        """Jobs due in the retry queue (taken, i.e. hidden for the visibility timeout)."""
        done = await self.state.recorded(partition, jobs)
        if done:
            self.counters.repeated += len(done)
            await self.queue.done(partition, sorted(done))
        now = now_ms()
        events: list[Recorded] = []
        sendable: list[Job] = []
        ended: list[str] = []
        held: list[tuple[Job, int]] = []
        waiting = [job for job in jobs if job.notification_id not in done]
        users = await self.state.load(partition, max_position(waiting),
                                      {j.user for j in waiting}) if waiting else {}
        for job in waiting:
            user = users[job.user]
            defaults = self.tenant_defaults.get(tenants.tenant_of(job.user) or "-", {})
            reason = opted_out(job, with_defaults(user.preferences, defaults), self.critical)
            until = None if job.critical else quiet_until(user.quiet_hours, now)
            if job.erased:
                events.append(job.skipped(ERASED))
                ended.append(job.notification_id)
                self.counters.skipped += 1
                self._outcomes["skipped"].inc()
            elif job.expired(now):
                events.append(job.expired_event())
                ended.append(job.notification_id)
                self.counters.expired += 1
                self._outcomes["expired"].inc()
            elif reason is not None:  # preferences checked again at send time
                events.append(job.skipped(f"{reason} while the send waited"))
                ended.append(job.notification_id)
                self.counters.skipped += 1
                self._outcomes["skipped"].inc()
            elif until is not None:
                held.append((job, until))
            else:
                sendable.append(job)
        await self._hold(partition, held)
        await self._run(partition, sendable, events, queued=True, ended=ended)

    async def _hold(self, partition: int, held: list[tuple[Job, int]]) -> None:
        """Jobs deferred to the end of their user's quiet hours (no attempt used)."""
        if held:
            await self.queue.put(partition, held)
            self.counters.deferred += len(held)

    # ----------------------------------------------------------------- steps
    async def _run(self, partition: int, jobs: list[Job], events: list[Recorded], *,
                   queued: bool, ended: Sequence[str] = ()) -> None:
        granted, deferred = await self._pace(jobs, queued=queued)
        if deferred:
            await self.queue.put(partition, deferred)
            self.counters.deferred += len(deferred)
            self._waits.inc(len(deferred))
        events.extend(job.attempted() for job in granted)
        await self._record(events)
        finished = list(ended)
        if granted:
            results = await asyncio.gather(*(self._send(job) for job in granted))
            retry: list[tuple[Job, int]] = []
            outcomes: list[Recorded] = []
            now = now_ms()
            for job, result in zip(granted, results, strict=True):
                outcomes.append(self._outcome(job, result, now, retry))
                outcomes.extend(job.device_removed(device, f"{result.detail}")
                                for device in result.stale)
                if not retry or retry[-1][0].notification_id != job.notification_id:
                    finished.append(job.notification_id)
            await self.queue.put(partition, retry)
            await self._record(outcomes)
        if queued and finished:
            await self.queue.done(partition, finished)

    async def _pace(
        self, jobs: list[Job], *, queued: bool
    ) -> tuple[list[Job], list[tuple[Job, int]]]:
        """Split jobs into those granted a send slot now and those deferred (with due times)."""
        if not jobs or not self.limited:
            return jobs, []
        granted: list[Job] = []
        deferred: list[tuple[Job, int]] = []
        now = now_ms()
        for job in jobs:
            critical = job.critical
            if not queued and not critical and self.spacing_ms and self._tail_ms > now:
                deferred.append((job, self._slot(now)))  # stay behind the backlog
                continue
            decision = await self.limiter.acquire(self.name, job.user, critical=critical)
            if decision.allowed:
                granted.append(job)
                continue
            earliest = now + math.ceil(decision.retry_after_s * 1000)
            if queued or critical or not self.spacing_ms:
                deferred.append((job, earliest + random.randint(0, REFUSED_JITTER_MS)))
            else:
                deferred.append((job, self._slot(earliest)))
        return granted, deferred

    def _slot(self, earliest: float) -> int:
        slot = max(earliest, self._tail_ms)
        self._tail_ms = slot + self.spacing_ms
        return math.ceil(slot)

    async def _send(self, job: Job) -> SendResult:
        async with self.gate:
            try:
                return await self.channel.send(job.message())
            except Exception as exc:  # a bug in a channel: retry it, loudly
                self._log.error("channel_send_raised", notification_id=job.notification_id,
                                error=repr(exc))
                return SendResult.retry(error_detail(exc))

    def _outcome(self, job: Job, result: SendResult, now: int,
                 retry: list[tuple[Job, int]]) -> Recorded:
        """The outcome event of one send; appends to ``retry`` when another attempt follows."""
        if result.outcome is Outcome.SENT:
            self.counters.sent += 1
            self._outcomes["sent"].inc()
            return job.succeeded(result.provider_id or "")
        if result.outcome is Outcome.RETRY:
            due = self.schedule.next_attempt_at(job.attempt, now,
                                                retry_after_s=result.retry_after_s)
            if due is not None:
                self.counters.retried += 1
                self._retries.inc()
                retry.append((job.next_attempt(result.remaining), due))
                return job.failed(result.detail, due)
            detail = f"{result.detail} (gave up after {job.attempt} attempts)"
        elif result.outcome is Outcome.DISABLED:
            detail = disabled_detail(job.address or "", result.detail)
        else:
            detail = result.detail
        self.counters.failed += 1
        self._outcomes["failed"].inc()
        self._log.warning("delivery_failed", notification_id=job.notification_id,
                          user=job.user, attempt=job.attempt, detail=detail)
        return job.failed(detail, None)

    async def _record(self, events: list[Recorded]) -> None:
        """Append outcome events (deduplicated by their idempotency keys)."""
        if not events:
            return
        now = now_ms()
        envelopes = [self.producer.envelope(user, event, idempotency_key=key, time_ms=now)
                     for user, event, key in events]
        size = self.settings.max_batch
        for start in range(0, len(envelopes), size):
            await self.producer.publish_many(envelopes[start : start + size])


def max_position(jobs: Sequence[Job]) -> str:
    """The highest log position among jobs (positions compare as (ms, seq))."""
    def key(job: Job) -> tuple[int, int]:
        ms, _, seq = job.position.partition("-")
        return int(ms), int(seq)
    return max(jobs, key=key).position
