"""The seed's escalation (README, "Workflows"), with compressed times, in-process:
the user reads the reminder (no SMS), pays (everything stops), does nothing (one SMS,
once, after the wait)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from herald.consumers.replay.verify import Verifier
from herald.streams.events import Envelope, NotificationCreated
from tests.consumers.workflows.conftest import SEED_WORKFLOW, Deployment, iso

pytestmark = pytest.mark.slow


def sends(events: list[Envelope], run_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """(step, channels) of every notification the run appended, in log order."""
    out = []
    for e in events:
        p = e.payload
        if isinstance(p, NotificationCreated) and p.data.get("workflow", {}).get("run") == run_id:
            out.append((p.data["workflow"]["step"], p.channels))
    return out


def outcomes(events: list[Envelope], run_id: str) -> list[tuple[str, str]]:
    return [(getattr(e.payload, "step", "run"), e.payload.outcome)  # type: ignore[attr-defined]
            for e in events if getattr(e.payload, "run_id", None) == run_id
            and e.type in ("workflow.step_decided", "workflow.run_ended")]


async def _start(d: Deployment, user: str) -> tuple[str, int]:
    await d.register("order_unpaid", SEED_WORKFLOW)
    deadline = int(time.time() * 1000) + 1500
    run = await d.trigger(user, "order_unpaid", {"order_id": "A1", "deadline": iso(deadline)},
                          cancel_key="order:A1")
    return run, deadline


async def _reminder(d: Deployment, user: str, run: str) -> str:
    async def found() -> str | None:
        for e in await d.log(user):
            p: Any = e.payload
            if isinstance(p, NotificationCreated) and p.data.get("workflow", {}).get(
                    "step") == "remind":
                return e.id
        return None
    nid: str = await d.until(found)
    return nid


async def test_the_user_does_nothing_one_sms_after_the_wait(deployment_wf: Deployment) -> None:
    d = deployment_wf
    run, deadline = await _start(d, "alice")
    end = await d.ended("alice", run)
    log = await d.log("alice")
    assert sends(log, run) == [("placed", ("in_app", "sms")), ("remind", ("in_app", "wechat")),
                               ("sms", ("sms",))]
    assert outcomes(log, run) == [
        ("placed", "sent"), ("before_deadline", "delayed"), ("before_deadline", "elapsed"),
        ("remind", "sent"), ("paid", "waiting"), ("paid", "timed_out"), ("sms", "sent"),
        ("run", "completed")]
    sms = next(e for e in log if e.type == "workflow.step_decided"
               and e.payload.step == "sms")  # type: ignore[attr-defined]
    assert sms.payload.result is True  # type: ignore[attr-defined]
    assert sms.payload.data["steps"]["remind"]["read"] is False  # type: ignore[attr-defined]
    # not before the wait's end: deadline - 600 ms + 500 ms
    assert sms.time >= deadline - 600 + 500
    assert end.payload.outcome == "completed"  # type: ignore[attr-defined]
    report = await Verifier(d.redis, d.settings).run()
    assert report.identical, report.differences


async def test_the_user_reads_the_reminder_no_sms(deployment_wf: Deployment) -> None:
    d = deployment_wf
    run, _ = await _start(d, "bob")
    nid = await _reminder(d, "bob", run)
    await d.read("bob", nid)
    await d.ended("bob", run)
    log = await d.log("bob")
    assert [s for s, _ in sends(log, run)] == ["placed", "remind"]
    assert outcomes(log, run)[-2:] == [("sms", "skipped"), ("run", "completed")]
    skipped = next(e for e in log if e.type == "workflow.step_decided"
                   and e.payload.step == "sms")  # type: ignore[attr-defined]
    assert skipped.payload.condition == "!steps.remind.read"  # type: ignore[attr-defined]
    assert skipped.payload.result is False  # type: ignore[attr-defined]
    assert skipped.payload.data["steps"]["remind"]["read"] is True  # type: ignore[attr-defined]


async def test_the_user_pays_everything_stops(deployment_wf: Deployment) -> None:
    d = deployment_wf
    run, _ = await _start(d, "carol")
    await _reminder(d, "carol", run)
    await d.business("carol", "order.paid", {"order_id": "OTHER"})  # another order: no match
    await d.business("carol", "order.paid", {"order_id": "A1"})
    end = await d.ended("carol", run)
    log = await d.log("carol")
    assert [s for s, _ in sends(log, run)] == ["placed", "remind"]
    assert end.payload.outcome == "cancelled"  # type: ignore[attr-defined]
    assert "cancel_on" in end.payload.detail  # type: ignore[attr-defined]
    # the wait's timer was removed: nothing more ever happens to the run
    before = len(await d.run_events("carol", run))
    await asyncio.sleep(1.0)
    assert len(await d.run_events("carol", run)) == before


async def test_paying_before_the_reminder_sends_nothing_more(deployment_wf: Deployment) -> None:
    d = deployment_wf
    run, _ = await _start(d, "dave")

    async def placed() -> bool:
        return bool(sends(await d.log("dave"), run))
    await d.until(placed)
    await d.business("dave", "order.paid", {"order_id": "A1"})
    end = await d.ended("dave", run)
    assert end.payload.outcome == "cancelled"  # type: ignore[attr-defined]
    await asyncio.sleep(1.5)  # past the deadline: no reminder, no SMS
    assert [s for s, _ in sends(await d.log("dave"), run)] == ["placed"]
