"""A consumer test's world: real server, projector and schedulers as tasks, log readers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.schedule.scheduler import Scheduler
from herald.streams import codec
from herald.streams.codec import ENTRY_FIELD
from herald.streams.events import (
    Appended,
    Envelope,
    NotificationCreated,
    Payload,
    ScheduleCancelled,
)
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.schedule_cancel import Canceller
from herald.streams.settings import Settings
from tests.consumers.helpers import start_projector


def now_ms() -> int:
    return int(time.time() * 1000)


class Harness:
    """One test's world: a prefix on the session server, producer, roles as tasks."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.producer = Producer(redis, settings)
        self.queries = InboxQueries(redis, settings)
        self.canceller = Canceller(redis, settings)
        self._projector: tuple[GroupRuntime, asyncio.Task[None], asyncio.Event] | None = None
        self._schedulers: list[tuple[Scheduler, asyncio.Task[None], asyncio.Event]] = []

    async def publish(self, user: str, payload: Payload, **kw: Any) -> Appended:
        return await self.producer.publish(self.producer.envelope(user, payload, **kw))

    # ------------------------------------------------------------------ roles
    def start_projector(self) -> None:
        assert self._projector is None
        stop = asyncio.Event()
        runtime, task = start_projector(self.settings, self.redis, stop)
        self._projector = (runtime, task, stop)

    async def stop_projector(self) -> None:
        assert self._projector is not None
        _, task, stop = self._projector
        stop.set()
        await asyncio.wait_for(task, 10)
        self._projector = None

    def start_scheduler(self, name: str) -> Scheduler:
        stop = asyncio.Event()
        scheduler = Scheduler(self.settings, self.redis, consumer=name)
        task = asyncio.create_task(scheduler.run(stop), name=name)
        self._schedulers.append((scheduler, task, stop))
        return scheduler

    async def crash_scheduler(self, scheduler: Scheduler) -> None:
        """Cancel its task: leases stay until they expire, nothing is released."""
        for s, task, _ in self._schedulers:
            if s is scheduler:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    async with asyncio.timeout(10):  # a cancel the loop ignored: fail here
                        await task

    async def close(self) -> None:
        for _, _task, stop in self._schedulers:
            stop.set()
        for _, task, _ in self._schedulers:
            if not task.done():
                await asyncio.wait_for(task, 10)
            elif not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if self._projector is not None:
            await self.stop_projector()

    # ------------------------------------------------------------------- reads
    async def log(self, user: str) -> list[tuple[str, Envelope]]:
        stream = self.keys.stream(self.producer.partition(user))
        rows = await self.redis.xrange(stream)
        return [(pos.decode(), codec.decode(f[ENTRY_FIELD])) for pos, f in rows]

    async def created_for(self, user: str, nid: str) -> list[tuple[str, Envelope]]:
        return [(pos, env) for pos, env in await self.log(user)
                if isinstance(env.payload, NotificationCreated)
                and env.payload.notification_id == nid]

    async def dropped_for(self, user: str, nid: str) -> list[tuple[str, Envelope]]:
        return [(pos, env) for pos, env in await self.log(user)
                if isinstance(env.payload, ScheduleCancelled)
                and env.payload.notification_id == nid]

    async def projected(self, user: str, within_s: float = 10.0) -> None:
        """Until the projector has applied everything in the user's partition."""
        p = self.producer.partition(user)
        last = await self.redis.xrevrange(self.keys.stream(p), count=1)
        assert await self.queries.wait_for(p, last[0][0].decode(), within_s)

    async def schedule_state(self, user: str) -> tuple[list[Any], dict[Any, Any]]:
        p = self.producer.partition(user)
        due = await self.redis.zrange(self.keys.schedule(p), 0, -1, withscores=True)
        digests = await self.redis.zrange(self.keys.digests_due(p), 0, -1, withscores=True)
        return due, {"digests_due": digests}


async def eventually(check: Callable[[], Any], within_s: float = 10.0,
                     every: float = 0.05) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within_s}s: {check}")
        await asyncio.sleep(every)
