"""Delivery test fixtures: the projector and channel roles on the test's prefix.

The provider stand-ins (webhook receiver, Twilio-shaped SMS API) are the channel
tests' own fixtures, imported here. :class:`Stack` appends events with the real
producer, runs roles as background tasks (cancel = crash, stop = graceful) and
reads status through the real queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from herald.consumers.delivery.queries import DeliveryQueries
from herald.consumers.delivery.worker import run_channel
from herald.consumers.projection.queries import InboxQueries
from herald.streams.events import (
    Appended,
    NotificationCreated,
    Payload,
    PreferencesChanged,
    ProfileChanged,
)
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import (  # noqa: F401 (fixtures)
    WEBHOOK_SECRET,
    FakeTwilio,
    Reply,
    WebhookReceiver,
    twilio,
    webhook_receiver,
)
from tests.consumers.helpers import start_projector, wait_projected

FINAL = ("sent", "failed", "skipped", "expired")


@pytest.fixture
def delivery_settings(settings: Settings) -> Settings:
    """Short leases, fast retries (0.2 s then 0.4 s), generous send timeouts."""
    return settings.replace(
        lease_ttl_s=1.0, retry_schedule="200ms,400ms", webhook_timeout_s=3.0,
        sms_timeout_s=3.0, log_level="warning", claim_idle_s=30.0,
    )


class Stack:
    """Producer, roles and queries over one prefix."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.producer = Producer(redis, settings)
        self.status_queries = DeliveryQueries(redis, settings)
        self.inbox = InboxQueries(redis, settings)
        self._tasks: list[tuple[asyncio.Task[None], asyncio.Event]] = []

    # ---------------------------------------------------------------- events
    async def append(self, user: str, payload: Payload, **kw: Any) -> Appended:
        return await self.producer.publish(self.producer.envelope(user, payload, **kw))

    async def profile(self, user: str, **fields: Any) -> Appended:
        return await self.append(user, ProfileChanged(**fields))

    async def webhook_profile(self, user: str, receiver: WebhookReceiver) -> Appended:
        return await self.profile(user, webhook_url=receiver.url + "/hook",
                                  webhook_secret=WEBHOOK_SECRET)

    async def preferences(self, user: str, prefs: dict[str, dict[str, bool]]) -> Appended:
        return await self.append(user, PreferencesChanged(preferences=prefs))

    async def notify(self, user: str, title: str = "hello", channels: Sequence[str] = ("webhook",),
                     **fields: Any) -> Appended:
        return await self.append(user, NotificationCreated(title=title, channels=tuple(channels),
                                                           **fields))

    # ----------------------------------------------------------------- roles
    def start_projector(self) -> None:
        stop = asyncio.Event()
        _, task = start_projector(self.settings, self.redis, stop)
        self._tasks.append((task, stop))

    def start_channel(self, name: str = "webhook", **kw: Any) -> tuple[asyncio.Task[None],
                                                                        asyncio.Event]:
        stop = asyncio.Event()
        kw.setdefault("block_ms", 100)
        task = asyncio.create_task(run_channel(name, self.settings, self.redis, stop, **kw))
        self._tasks.append((task, stop))
        return task, stop

    async def close(self) -> None:
        for _, stop in self._tasks:
            stop.set()
        for task, _ in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    # ---------------------------------------------------------------- status
    async def status(self, nid: str) -> dict[str, Any] | None:
        return await self.status_queries.notification(nid)

    async def wait_state(self, nid: str, channel: str = "webhook",
                         states: Sequence[str] = FINAL, timeout: float = 15.0  # noqa: ASYNC109
                         ) -> dict[str, Any]:
        """The status once ``channel`` reaches one of ``states``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        doc = None
        while time.monotonic() < deadline:
            doc = await self.status(nid)
            if doc and doc["channels"].get(channel, {}).get("state") in states:
                return doc
            await asyncio.sleep(0.02)
        raise AssertionError(f"{channel} of {nid} never reached {states}: {doc}")

    async def projected(self, appended: Sequence[Appended]) -> None:
        await wait_projected(self.inbox, appended)


@pytest.fixture
async def stack(delivery_settings: Settings, redis: Any) -> AsyncIterator[Stack]:
    s = Stack(delivery_settings, redis)
    s.start_projector()
    try:
        yield s
    finally:
        await s.close()


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
