"""Fan-out jobs: a topic publish waiting to reach every subscriber, resumable.

A job is one hash (``Keys.fanout_job``) and a member of ``Keys.fanout_queue``:
``tenant``, ``topic``, ``payload`` (the packed ``notification.created`` payload every
recipient gets), ``digest`` (of the request: a reused key with another payload is a
conflict), ``partition`` and ``scan`` (the cursor: the partition being walked and its
SSCAN cursor), ``sent`` (recipients appended so far), ``created`` and ``done`` (ms).

Exactly once per recipient: every recipient's notification is appended under the
idempotency key :func:`recipient_key` (job, user). The cursor is saved after each
batch is appended; a worker that dies between the two re-appends that batch on
resume and the producer answers the first appends (nothing twice). A job is worked
by one worker at a time (``Keys.fanout_lease``).

Who receives it: the users in the topic's member sets when the walk reaches them (a
user who unsubscribed before is skipped — the unsubscribe was projected first).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from herald.streams import codec
from herald.streams.connection import text
from herald.streams.events import NotificationCreated
from herald.streams.ids import new_id, now_ms
from herald.streams.keys import Keys

BROADCAST = ""  # a job's topic for a broadcast: every known user of the tenant
JOB_FIELDS = ("tenant", "topic", "payload", "digest", "partition", "scan", "sent", "created",
              "done")


def job_id_for(tenant: str, topic: str, idempotency_key: str | None) -> str:
    """The job's id: derived from the idempotency key (a retried publish finds its job),
    else a fresh Herald id."""
    if idempotency_key is None:
        return new_id(0)
    raw = f"{tenant}\x1f{topic}\x1f{idempotency_key}".encode()
    return "k" + hashlib.blake2b(raw, digest_size=12).hexdigest()


def recipient_key(job_id: str, user: str) -> str:
    """Idempotency key of one recipient's notification of a job."""
    return f"fo:{job_id}:{hashlib.blake2b(user.encode(), digest_size=8).hexdigest()}"


@dataclass(slots=True)
class Job:
    id: str
    tenant: str
    topic: str
    payload: NotificationCreated
    digest: str
    partition: int
    scan: str
    sent: int
    created: int
    done: int | None

    def doc(self, partitions: int) -> dict[str, Any]:
        """The job as the API shows it."""
        return {"id": self.id, "topic": self.topic, "sent": self.sent,
                "status": "done" if self.done is not None else "fanning_out",
                "progress": 1.0 if self.done is not None else round(
                    self.partition / max(1, partitions), 4)}


class FanoutJobs:
    """Create, read and advance jobs; one instance per process."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def create(self, job_id: str, tenant: str, topic: str, payload: NotificationCreated,
                     digest: str) -> tuple[Job, bool]:
        """The job, and whether it is new (False: the same id existed: a retry)."""
        key = self.keys.fanout_job(job_id)
        now = now_ms()
        fields = {"tenant": tenant, "topic": topic,
                  "payload": codec.pack_binary(codec.payload_to_dict(payload)),
                  "digest": digest, "partition": 0, "scan": "0", "sent": 0, "created": now}
        fresh = bool(await self.redis.hsetnx(key, "digest", digest))
        if fresh:  # a retry (the same id) leaves the first create's fields and cursor
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={k: v for k, v in fields.items() if k != "digest"})
                pipe.zadd(self.keys.fanout_queue(), {job_id: now})
                await pipe.execute()
        for _ in range(50):  # a concurrent first create may not have written the rest yet
            job = await self.get(job_id)
            if job is not None:
                return job, fresh
            await asyncio.sleep(0.01)
        raise RuntimeError(f"fan-out job {job_id} has no payload")

    async def get(self, job_id: str) -> Job | None:
        values = await self.redis.hmget(self.keys.fanout_job(job_id), JOB_FIELDS)
        if values[0] is None or values[2] is None:
            return None
        tenant, topic, payload, digest, partition, scan, sent, created, done = values
        fields = codec.unpack_binary(payload)
        fields["channels"] = tuple(fields.get("channels", ("in_app",)))
        return Job(job_id, text(tenant), text(topic),
                   NotificationCreated(**fields), text(digest), int(partition), text(scan),
                   int(sent), int(created), None if done is None else int(done))

    async def pending(self, limit: int = 10) -> list[str]:
        return [text(m) for m in await self.redis.zrange(self.keys.fanout_queue(), 0,
                                                          limit - 1)]

    async def lease(self, job_id: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew the job's lease (compare-and-set on the owner)."""
        key = self.keys.fanout_lease(job_id)
        if await self.redis.set(key, owner, nx=True, px=ttl_ms):
            return True
        if text(await self.redis.get(key) or b"") == owner:
            await self.redis.pexpire(key, ttl_ms)
            return True
        return False

    async def advance(self, job: Job, partition: int, scan: str, sent: int) -> None:
        """Save the cursor after a batch was appended."""
        job.partition, job.scan, job.sent = partition, scan, job.sent + sent
        await self.redis.hset(self.keys.fanout_job(job.id), mapping={
            "partition": partition, "scan": scan, "sent": job.sent})

    async def finish(self, job: Job) -> None:
        job.done = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys.fanout_job(job.id), "done", job.done)
            pipe.zrem(self.keys.fanout_queue(), job.id)
            pipe.delete(self.keys.fanout_lease(job.id))
            await pipe.execute()
