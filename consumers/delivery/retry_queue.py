"""The retry queue: delivery jobs waiting in Redis for their next attempt or a rate slot.

Per (channel, partition): a sorted set ``Keys.retry_queue`` (notification id →
due time, ms), a second one for critical jobs (taken first, so a critical send never
waits behind queued bulk ones) and a hash ``Keys.retry_jobs`` (notification id →
packed :class:`~consumers.delivery.jobs.Job`), all in the partition's slot and written
together in one MULTI. A job is identified by its notification id: putting it
again replaces it (a new attempt number, a new due time), never duplicates it. Its
content and recipient are stored sealed with the user's data key (streams/sealing.py);
a job whose key was erased meanwhile comes back ``erased`` (skipped, never sent).

Taking (``lua/retry_take.lua``) hides due jobs for ``visibility`` instead of
removing them: a worker killed mid-send leaves them to be taken again after that
time, by whichever consumer owns the partition then (at-least-once, with the same
idempotency key). The worker removes a job once its outcome is recorded.

Only the consumer holding a partition's lease for the channel group polls its
queue (consumers/delivery/worker.py); :meth:`RetryQueue.take` also says when the
next job is due, and :attr:`RetryQueue.added` is set by every :meth:`put` in this
process, so the poller sleeps until then instead of polling empty queues. Redis
errors propagate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from herald.consumers.delivery.jobs import Job
from herald.streams.connection import text
from herald.streams.crypto import CryptoError
from herald.streams.errors import CodecError
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.log import get_logger
from herald.streams.scripts import register
from herald.streams.sealing import open_blob
from herald.streams.settings import Settings

log = get_logger(__name__)


class RetryQueue:
    """One channel's queues over all partitions; one instance per process."""

    def __init__(self, redis: Any, settings: Settings, channel: str) -> None:
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.channel = channel
        self.sealing = settings.seal
        self.data_keys = KeyStore(redis, settings)
        self.added = asyncio.Event()
        self._take = register(redis, __file__, "retry_take")

    def queue_key(self, partition: int, critical: bool = False) -> str:
        return self.keys.retry_queue(self.channel, partition, critical)

    def jobs_key(self, partition: int) -> str:
        return self.keys.retry_jobs(self.channel, partition)

    async def put(self, partition: int, jobs: Sequence[tuple[Job, int]]) -> None:
        """Store jobs due at the given times (ms), replacing any of the same notification."""
        if not jobs:
            return
        keys = {}
        if self.sealing:
            for user in {job.user for job, _ in jobs}:
                keys[user] = await self.data_keys.current(user)
        packed = {job.notification_id: job.pack(keys.get(job.user), sealing=self.sealing)
                  for job, _ in jobs}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.jobs_key(partition), mapping=packed)
            for critical in (False, True):
                chosen = {job.notification_id: due for job, due in jobs
                          if job.critical is critical}
                if chosen:
                    pipe.zadd(self.queue_key(partition, critical), chosen)
            await pipe.execute()
        self.added.set()

    async def take(
        self, partitions: Iterable[int], now_ms: int, limit: int, visibility_ms: int
    ) -> tuple[dict[int, list[Job]], int | None]:
        """Due jobs per partition (at most ``limit`` each), hidden for ``visibility_ms``,
        and the earliest due time (ms) left in these queues (None: all empty).

        A job that cannot be unpacked is logged and removed (it was not written by
        this version).
        """
        parts = list(partitions)
        if not parts:
            return {}, None
        calls = [(p, critical) for p in parts for critical in (True, False)]
        replies = await self._take.many(
            [([self.queue_key(p, critical), self.jobs_key(p)], [now_ms, limit, visibility_ms])
             for p, critical in calls])
        out: dict[int, list[Job]] = {}
        next_due: int | None = None
        for (p, _critical), reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            due = int(reply[0])
            if due >= 0:
                next_due = due if next_due is None else min(next_due, due)
            jobs, broken = [], []
            for i in range(1, len(reply), 2):
                try:
                    jobs.append(await self._opened(*Job.unpack(reply[i + 1])))
                except (CodecError, CryptoError) as exc:
                    broken.append(text(reply[i]))
                    log.error("retry_job_unreadable", partition=p, channel=self.channel,
                              notification_id=text(reply[i]), error=str(exc))
            if broken:
                await self.done(p, broken)
            if jobs:
                out.setdefault(p, []).extend(jobs)  # a partition's critical jobs first
        return out, next_due

    async def _opened(self, job: Job, sealed: bytes | None) -> Job:
        if sealed is None:
            return job
        fields = await open_blob(self.data_keys, job.user, sealed)
        return replace(job, erased=True) if fields is None else job.with_personal(fields)

    async def done(self, partition: int, notification_ids: Sequence[str]) -> None:
        """Forget finished jobs."""
        if not notification_ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.queue_key(partition), *notification_ids)
            pipe.zrem(self.queue_key(partition, True), *notification_ids)
            pipe.hdel(self.jobs_key(partition), *notification_ids)
            await pipe.execute()

    async def queued(self, partition: int, notification_ids: Sequence[str]) -> set[str]:
        """Which of these notifications have a job waiting here."""
        if not notification_ids:
            return set()
        found = await self.redis.hmget(self.jobs_key(partition), list(notification_ids))
        return {nid for nid, job in zip(notification_ids, found, strict=True) if job is not None}

    async def depth(self, partitions: Iterable[int]) -> int:
        """Jobs waiting over the given partitions."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.zcard(self.queue_key(p))
                pipe.zcard(self.queue_key(p, True))
            replies = await pipe.execute()
        return sum(int(n) for n in replies)
