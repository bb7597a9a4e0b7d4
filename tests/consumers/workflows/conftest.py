"""A running deployment in-process (projector, scheduler, workflows) and the seed's
workflow with compressed times."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.schedule.scheduler import Scheduler
from herald.consumers.workflows.engine import factory as workflows_factory
from herald.streams.events import (
    WORKFLOWS_USER,
    Appended,
    BusinessEventReceived,
    Envelope,
    NotificationRead,
    WorkflowRegistered,
    WorkflowTriggered,
)
from herald.streams.partitions import partition_for
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.conftest import log_entries
from tests.consumers.helpers import start_projector

# The seed's escalation with minutes compressed to fractions of a second: the reminder
# 0.6 s before the deadline, the SMS after a 0.5 s wait.
SEED_WORKFLOW: dict[str, Any] = {
    "description": "Order placed and not paid: remind in the app and on WeChat shortly "
                   "before the deadline, then SMS unless read or paid.",
    "example": {"order_id": "42", "deadline": "2026-12-08T12:00:00Z"},
    "cancel_on": [{"event": "order.paid", "match": "order_id"}],
    "steps": [
        {"id": "placed", "type": "send", "channels": ["in_app", "sms"],
         "title": "Order {{ order_id }} placed"},
        {"id": "before_deadline", "type": "delay", "until": "deadline", "offset": "-600ms"},
        {"id": "remind", "type": "send", "channels": ["in_app", "wechat"],
         "title": "Order {{ order_id }} is not paid yet"},
        {"id": "paid", "type": "wait_for", "event": "order.paid", "match": "order_id",
         "timeout": "500ms", "on_match": "stop"},
        {"id": "sms", "type": "send", "channels": ["sms"],
         "title": "Pay order {{ order_id }} now", "if": "!steps.remind.read"},
    ],
}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class Deployment:
    """Projector, scheduler and the workflows role on one prefix, and helpers."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings, self.redis = settings, redis
        self.producer = Producer(redis, settings)
        self.queries = InboxQueries(redis, settings)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.versions: dict[str, int] = {}

    def start(self, workflows: bool = True) -> None:
        _, task = start_projector(self.settings, self.redis, self.stop)
        self.tasks.append(task)
        self.tasks.append(asyncio.create_task(
            Scheduler(self.settings, self.redis, consumer="s1").run(self.stop)))
        if workflows:
            self.start_workflows("w1")

    def start_workflows(self, consumer: str) -> asyncio.Task[None]:
        runtime = GroupRuntime(self.settings, self.redis, workflows_factory, consumer=consumer,
                               block_ms=100)
        task = asyncio.create_task(runtime.run(self.stop))
        self.tasks.append(task)
        return task

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)

    async def publish(self, user: str, payload: Any, key: str | None = None) -> Appended:
        env = self.producer.envelope(user, payload, idempotency_key=key)
        return await self.producer.publish(env)

    async def register(self, key: str, definition: dict[str, Any]) -> int:
        version = self.versions.get(key, 0) + 1
        done = await self.publish(WORKFLOWS_USER, WorkflowRegistered(
            workflow_key=key, version=version, definition=definition))
        assert await self.queries.wait_for(done.partition, done.position, 10)
        self.versions[key] = version
        return version

    async def trigger(self, user: str, key: str, data: dict[str, Any],
                      cancel_key: str | None = None) -> str:
        done = await self.publish(user, WorkflowTriggered(
            workflow_key=key, version=self.versions[key], data=data, cancel_key=cancel_key))
        return done.id

    async def business(self, user: str, name: str, data: dict[str, Any]) -> Appended:
        return await self.publish(user, BusinessEventReceived(name=name, data=data))

    async def read(self, user: str, nid: str) -> Appended:
        return await self.publish(user, NotificationRead(notification_id=nid))

    async def log(self, user: str) -> list[Envelope]:
        p = partition_for(user, self.settings.partitions)
        return [e for e in await log_entries(self.redis, self.settings, p) if e.user == user]

    async def run_events(self, user: str, run_id: str) -> list[Envelope]:
        return [e for e in await self.log(user)
                if getattr(e.payload, "run_id", None) == run_id]

    async def until(self, what: Callable[[], Any], timeout: float = 15.0) -> Any:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            found = await what()
            if found:
                return found
            assert time.monotonic() < deadline, "timed out waiting"
            await asyncio.sleep(0.05)

    async def ended(self, user: str, run_id: str) -> Envelope:
        async def end() -> Envelope | None:
            return next((e for e in await self.run_events(user, run_id)
                         if e.type == "workflow.run_ended"), None)
        found: Envelope = await self.until(end)
        return found


@pytest.fixture
async def deployment_wf(settings: Settings, redis: Any) -> AsyncIterator[Deployment]:
    d = Deployment(settings.replace(lease_ttl_s=1.0), redis)
    d.start()
    try:
        yield d
    finally:
        await d.close()
