"""The ``fanout`` role: walks each pending topic publish over its subscribers.

For one job at a time (leased), partition by partition: SSCAN the topic's member set
of that partition (``HERALD_FANOUT_BATCH`` users a step), append one
``notification.created`` per member under its recipient idempotency key
(consumers/fanout/jobs.py), save the cursor, and keep to ``HERALD_FANOUT_RATE``
recipients a second (so ordinary publishing keeps its share of the server). The
notifications are ordinary ones: the projector puts them in the inboxes in each
user's log order, live push, replay and preferences treat them like any other.

Failure modes: a batch the producer refuses (a store error) is retried after
:data:`BACKOFF_S` from the saved cursor; a lost lease stops the walk (another
worker resumes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from herald.consumers.fanout.jobs import BROADCAST, FanoutJobs, Job, recipient_key
from herald.consumers.projection.views import Views
from herald.streams import tenants
from herald.streams.connection import REDIS_ERRORS, text
from herald.streams.errors import HeraldError
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.producer import Producer
from herald.streams.settings import Settings, parse_rate

POLL_S = 0.2
RETRIED: tuple[type[Exception], ...] = (HeraldError, *REDIS_ERRORS)
BACKOFF_S = 1.0
LEASE_MS = 30_000

log = get_logger(__name__)


class Fanout:
    """Works fan-out jobs; one per worker process."""

    def __init__(self, redis: Any, settings: Settings, owner: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.jobs = FanoutJobs(redis, self.keys)
        self.views = Views(redis, settings)
        self.producer = Producer(redis, settings)
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self.batch = max(1, min(settings.fanout_batch, settings.max_batch))
        rate = parse_rate(settings.fanout_rate)
        self.per_s = None if rate is None else rate[0] / rate[1]

    async def run_once(self) -> int:
        """Work every pending job this worker can lease; recipients appended."""
        total = 0
        for job_id in await self.jobs.pending():
            if not await self.jobs.lease(job_id, self.owner, LEASE_MS):
                continue
            job = await self.jobs.get(job_id)
            if job is None or job.done is not None:
                continue
            total += await self.walk(job)
        return total

    async def walk(self, job: Job) -> int:
        started, sent = time.monotonic(), 0
        partitions = self.settings.partitions
        while job.partition < partitions:
            p = job.partition
            ns = await self.views.ns(p)
            members = (self.keys.tenant_users(p, job.tenant, ns) if job.topic == BROADCAST
                       else self.keys.topic_members(p, job.tenant, job.topic, ns))
            cursor, users = await self.redis.sscan(members, int(job.scan), count=self.batch)
            users = [text(u) for u in users]
            if users:
                envelopes = [self.producer.envelope(
                    user, job.payload, idempotency_key=recipient_key(job.id, user))
                    for user in users if tenants.tenant_of(user) == job.tenant]
                step = self.settings.max_batch
                for at in range(0, len(envelopes), step):
                    chunk = envelopes[at:at + step]
                    # One digest for the whole job (every recipient's keys are its own).
                    await self.producer.publish_many(chunk, digests=[job.digest] * len(chunk))
                sent += len(envelopes)
            if int(cursor) == 0:
                await self.jobs.advance(job, p + 1, "0", len(users))
            else:
                await self.jobs.advance(job, p, str(cursor), len(users))
            if not await self.jobs.lease(job.id, self.owner, LEASE_MS):
                return sent
            if self.per_s is not None and sent:
                ahead = sent / self.per_s - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await self.jobs.finish(job)
        log.info("fanout_finished", job=job.id, topic=job.topic, sent=job.sent)
        return sent


async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
    """The ``fanout`` role (see the module doc)."""
    fanout = Fanout(redis, settings)
    started = False
    while not stop.is_set():
        try:  # the store down or failing over: wait and go on, never end the role
            if not started:
                await fanout.producer.start()
                started = True
            worked = await fanout.run_once()
        except RETRIED as exc:
            log.warning("fanout_failed", error=str(exc))
            worked = 0
            await asyncio.sleep(BACKOFF_S)
        if not worked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
