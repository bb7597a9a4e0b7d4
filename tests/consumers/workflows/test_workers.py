"""Workers killed mid-run: every run still ends, each step decided once, each notification
appended once, and the rebuilt state equals live."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest

from herald.consumers.replay.verify import Verifier
from herald.streams.events import NotificationCreated, WorkflowTriggered
from tests.consumers.workflows.conftest import Deployment

pytestmark = pytest.mark.slow

FLOW: dict[str, Any] = {
    "example": {"n": 1},
    "steps": [
        {"id": "first", "type": "send", "channels": ["in_app"], "title": "first {{ n }}"},
        {"id": "pause", "type": "delay", "for": "300ms"},
        {"id": "wait", "type": "wait_for", "event": "done", "match": "n", "timeout": "2s"},
        {"id": "last", "type": "send", "channels": ["in_app"], "title": "last {{ n }}",
         "if": "!steps.first.read && !steps.wait.matched"},
    ],
}
USERS = [f"user{i}" for i in range(24)]


async def _waiting(d: Deployment, user: str) -> bool:
    return any(e.type == "workflow.step_decided" and e.payload.outcome == "waiting"  # type: ignore[attr-defined]
               for e in await d.log(user))


async def test_a_killed_worker_is_replaced_and_nothing_is_doubled(settings: Any,
                                                                  redis: Any) -> None:
    d = Deployment(settings.replace(lease_ttl_s=1.0), redis)
    d.start()  # projector, scheduler, workflows worker w1
    try:
        await d.register("flow", FLOW)
        runs = {u: await d.trigger(u, "flow", {"n": i}) for i, u in enumerate(USERS)}
        await asyncio.sleep(0.15)
        victim = d.tasks[-1]  # w1: killed mid-way (a crash: nothing released)
        victim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await victim
        d.start_workflows("w2")
        # half the users answer the wait, once it has begun: their last step is skipped
        for i, u in list(enumerate(USERS))[::2]:
            await d.until(lambda u=u: _waiting(d, u))
            await d.business(u, "done", {"n": i})
        for u, run in runs.items():
            await d.ended(u, run)
        report = await Verifier(redis, d.settings).run()
        assert report.identical, report.differences
    finally:
        await d.close()
    for i, u in enumerate(USERS):
        log = await d.log(u)
        decided = Counter((e.payload.step, e.payload.outcome) for e in log  # type: ignore[attr-defined]
                          if e.type == "workflow.step_decided")
        assert all(n == 1 for n in decided.values()), (u, decided)
        sent = [e.payload.title for e in log if isinstance(e.payload, NotificationCreated)]
        matched = i % 2 == 0
        assert sent == ([f"first {i}"] if matched else [f"first {i}", f"last {i}"]), (u, sent)
        ended = [e for e in log if e.type == "workflow.run_ended"]
        assert len(ended) == 1 and ended[0].payload.outcome == "completed"  # type: ignore[attr-defined]


async def test_a_batch_that_decides_more_than_a_producer_batch_is_appended_in_parts(
        settings: Any, redis: Any) -> None:
    # HERALD_MAX_BATCH 4: twenty triggers read together make ~60 events to append
    d = Deployment(settings.replace(max_batch=4), redis)
    d.start(workflows=False)
    try:
        await d.register("flow", FLOW)
        envs = [d.producer.envelope(f"b{i}", WorkflowTriggered(
            workflow_key="flow", version=1, data={"n": i})) for i in range(20)]
        for first in range(0, 20, 4):
            await d.producer.publish_many(envs[first:first + 4])
        d.start_workflows("w1")  # it finds all twenty waiting in the log
        for env in envs:
            end = await d.ended(env.user, env.id)
            assert end.payload.outcome == "completed"  # type: ignore[attr-defined]
    finally:
        await d.close()
