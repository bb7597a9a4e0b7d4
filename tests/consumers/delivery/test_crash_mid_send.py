"""Crashes: kill -9 mid-send, redelivered entries, taken retry jobs of a dead worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from herald.consumers.delivery.jobs import Job
from herald.consumers.delivery.retry_queue import RetryQueue
from herald.consumers.delivery.worker import DeliveryHandler
from herald.consumers.group.handler import Entry
from herald.streams import codec
from tests.consumers.channels.conftest import Reply, WebhookReceiver
from tests.consumers.delivery.conftest import Stack, wait_until
from tests.consumers.helpers import worker_command, worker_env


async def delivery_events(stack: Stack, partition: int) -> list[tuple[str, int]]:
    rows = await stack.redis.xrange(stack.producer.keys.stream(partition))
    envs = [codec.decode(fields[b"e"]) for _, fields in rows]
    return [(e.type, e.payload.attempt) for e in envs if e.type.startswith("delivery.")]


async def test_kill_9_mid_send_is_delivered_again_with_the_same_key(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.script(Reply(200, delay_s=60))  # the first send hangs: kill it there
    await stack.webhook_profile("lea", webhook_receiver)
    created = await stack.notify("lea", "pay now")
    env = worker_env(stack.settings, HERALD_WEBHOOK_TIMEOUT="30s")
    proc = await asyncio.create_subprocess_exec(
        *worker_command("--roles", "webhook"), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_until(lambda: len(webhook_receiver.received) == 1, timeout=30)
        os.kill(proc.pid, signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    pending = await stack.status(created.id)
    assert pending is not None and pending["channels"]["webhook"]["state"] == "pending"
    stack.start_channel("webhook")  # takes the partition over once the lease runs out
    doc = await stack.wait_state(created.id, timeout=20)
    hook = doc["channels"]["webhook"]
    assert hook["state"] == "sent" and hook["attempts"] == 1
    first, second = webhook_receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.verified
    assert await delivery_events(stack, created.partition) == [
        ("delivery.attempted", 1), ("delivery.succeeded", 1)]


async def test_a_redelivered_entry_whose_outcome_is_recorded_is_not_sent_again(
    stack: Stack, webhook_receiver: WebhookReceiver, redis: Any
) -> None:
    await stack.webhook_profile("max", webhook_receiver)
    created = await stack.notify("max", "once")
    await stack.projected([created])
    handler = DeliveryHandler(stack.settings, redis, "c1", "webhook")
    try:
        [(_, fields)] = await redis.xrange(stack.producer.keys.stream(created.partition),
                                           created.position, created.position)
        entry = Entry(created.position, fields[b"e"])
        await handler.handle(created.partition, [entry])
        assert len(webhook_receiver.received) == 1
        # as if the ack was lost in a crash: the same entry comes back
        again = Entry(created.position, fields[b"e"], deliveries=2)
        assert await handler.handle(created.partition, [again]) == [None]
        assert len(webhook_receiver.received) == 1
        assert handler.dispatcher.counters.repeated == 1
    finally:
        await handler.aclose()
    assert await delivery_events(stack, created.partition) == [
        ("delivery.attempted", 1), ("delivery.succeeded", 1)]


def _job(nid: str = "01HZX3J4K5M6N7P8Q9R0S1T2V3") -> Job:
    return Job(notification_id=nid, channel="webhook", user="u", position="1-0",
               created_at=1, title="t", address="http://x", attempt=2)


async def test_taken_jobs_hide_then_reappear_when_nobody_finishes_them(
    redis: Any, stack: Stack
) -> None:
    queue = RetryQueue(redis, stack.settings, "webhook")
    job = _job()
    await queue.data_keys.for_writing([job.user])  # the user's data key, as a publish makes
    now = int(time.time() * 1000)
    await queue.put(3, [(job, now - 1)])
    stored = await redis.hget(queue.jobs_key(3), job.notification_id)
    assert b"http://x" not in stored  # the recipient is sealed at rest
    assert await queue.take([3], now, 10, visibility_ms=200) == ({3: [job]}, now + 200)
    assert await queue.take([3], now + 100, 10, visibility_ms=200) == ({}, now + 200)  # hidden
    assert await queue.take([3], now + 250, 10, visibility_ms=200) == ({3: [job]}, now + 450)
    await queue.done(3, [job.notification_id])
    assert await queue.take([3], now + 10_000, 10, visibility_ms=200) == ({}, None)
    assert await queue.depth([3]) == 0
    # Erased meanwhile: the job comes back erased (the dispatcher skips it), never sent.
    await queue.put(3, [(job, now - 1)])
    await queue.data_keys.erase(job.user)
    taken, _ = await queue.take([3], now + 20_000, 10, visibility_ms=200)
    assert [j.erased for j in taken[3]] == [True] and taken[3][0].address is None
