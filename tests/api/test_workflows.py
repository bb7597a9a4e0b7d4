"""Workflow routes over real HTTP with the projector, scheduler and workflows roles:
registration (every error by path, versions), triggers, business events, cancel keys,
and the run's explanation."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_role
from tests.consumers.workflows.conftest import SEED_WORKFLOW, iso

pytestmark = pytest.mark.usefixtures("projector")


@pytest.fixture
async def roles(api_settings: Settings, redis: Any) -> AsyncIterator[None]:
    async with running_role("scheduler", api_settings, redis), \
            running_role("workflows", api_settings, redis):
        yield


async def _put(api: ApiClient, key: str, definition: dict[str, Any]) -> Any:
    return await api.call("PUT", f"/v1/workflows/{key}", json=definition)


async def _run(api: ApiClient, run_id: str, status: str, timeout: float = 15.0) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        answer = await api.get(f"/v1/workflow-runs/{run_id}")
        if answer.status == 200 and answer.body["status"] == status:
            return answer.body
        assert time.monotonic() < deadline, answer.body
        await asyncio.sleep(0.05)


async def test_every_error_is_listed_by_its_path(api: ApiClient) -> None:
    bad = {
        "example": {"order_id": "1"},
        "steps": [
            {"id": "a", "type": "send", "channels": ["in_app"], "title": "Hi {{ order_id }",
             "if": "steps.later.read"},
            {"id": "a", "type": "send", "channels": ["sms"], "template": "no-such-template"},
            {"id": "w", "type": "wait_for", "event": "order.paid"},
            {"id": "c", "type": "delay", "for": "1m", "if": "data.x >"},
            {"id": "later", "type": "send", "channels": ["in_app"], "title": "x"},
        ],
    }
    answer = await _put(api, "broken", bad)
    assert answer.status == 422, answer.body
    assert answer.content_type == "application/problem+json"
    paths = {e["path"]: e["message"] for e in answer.body["errors"]}
    assert set(paths) == {"steps.0.title", "steps.0.if", "steps.1.id", "steps.1.template",
                          "steps.2.timeout", "steps.3.if"}, paths
    assert "later" in paths["steps.0.if"] and "earlier" in paths["steps.0.if"]
    assert "duplicates" in paths["steps.1.id"]
    assert "compile" in paths["steps.3.if"]
    unknown = {"steps": [{"id": "x", "type": "teleport"}]}
    answer = await _put(api, "broken", unknown)
    assert answer.status == 422 and answer.body["errors"][0]["path"].startswith("steps.0")
    assert (await api.get("/v1/workflows/broken")).status == 404


async def test_versions_are_kept_and_listed(api: ApiClient) -> None:
    first = await _put(api, "order_unpaid", SEED_WORKFLOW)
    assert first.status == 201 and first.body["version"] == 1, first.body
    again = await _put(api, "order_unpaid", SEED_WORKFLOW)
    assert again.status == 200 and again.body == {**again.body, "version": 1, "created": False}
    changed = copy.deepcopy(SEED_WORKFLOW)
    changed["steps"][-1]["if"] = "!steps.remind.read && !steps.remind.delivered"
    second = await _put(api, "order_unpaid", changed)
    assert second.status == 201 and second.body["version"] == 2
    one = await api.get("/v1/workflows/order_unpaid?version=1")
    assert one.body["definition"] == SEED_WORKFLOW and one.body["latest"] == 2
    listed = await api.get("/v1/workflows")
    assert listed.body == {"workflows": [{"key": "order_unpaid", "latest": 2}]}


@pytest.mark.usefixtures("roles")
async def test_a_run_is_triggered_cancelled_by_key_and_explained(api: ApiClient) -> None:
    assert (await _put(api, "order_unpaid", SEED_WORKFLOW)).status == 201
    deadline = int(time.time() * 1000) + 60_000  # far: the run waits in its delay
    body = {"to": ["alice", "bob"], "data": {"order_id": "A1", "deadline": iso(deadline)},
            "cancel_key": "order-A1", "idempotency_key": "checkout-A1"}
    answer = await api.post("/v1/workflows/order_unpaid/trigger", json=body)
    assert answer.status == 201, answer.body
    runs = {r["user"]: r["run_id"] for r in answer.body["runs"]}
    repeated = await api.post("/v1/workflows/order_unpaid/trigger", json=body)
    assert repeated.status == 200
    assert {r["user"]: r["run_id"] for r in repeated.body["runs"]} == runs
    assert all(r["duplicate"] for r in repeated.body["runs"])
    for run in runs.values():
        await _run_parked(api, run)
    cancel = await api.delete("/v1/scheduled/order-A1")
    assert cancel.status in (200, 202), cancel.body
    doc = await _run(api, runs["alice"], "cancelled")
    whats = [line.get("what") for line in doc["timeline"]]
    assert whats == ["started", "sent", "delayed", "cancelled"], doc
    assert doc["timeline"][1]["notification_id"]
    # a notification a run sent explains its run
    by_note = await api.get(f"/v1/workflow-runs/{doc['timeline'][1]['notification_id']}")
    assert by_note.status == 200 and by_note.body["run_id"] == runs["alice"]
    assert (await api.get("/v1/workflow-runs/01HF7YAT00APF0XHPYJ0P8BC1Z")).status == 404


async def _run_parked(api: ApiClient, run_id: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        answer = await api.get(f"/v1/workflow-runs/{run_id}")
        if answer.status == 200 and any(line.get("what") == "delayed"
                                         for line in answer.body["timeline"]):
            return
        assert time.monotonic() < deadline, answer.body
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("roles")
async def test_a_business_event_resumes_a_wait(api: ApiClient) -> None:
    definition = {
        "example": {"order_id": "1"},
        "steps": [
            {"id": "wait", "type": "wait_for", "event": "order.shipped", "match": "order_id",
             "timeout": "1h"},
            {"id": "tell", "type": "send", "channels": ["in_app"],
             "title": "Order {{ order_id }} shipped", "if": "steps.wait.matched"},
        ],
    }
    assert (await _put(api, "shipping", definition)).status == 201
    answer = await api.post("/v1/workflows/shipping/trigger",
                            json={"to": "carol", "data": {"order_id": "9"}})
    run = answer.body["runs"][0]["run_id"]
    deadline = time.monotonic() + 15
    while not any(line.get("what") == "waiting"
                  for line in (await api.get(f"/v1/workflow-runs/{run}")).body["timeline"]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    sent = await api.post("/v1/business-events", json={
        "type": "order.shipped", "user": "carol", "data": {"order_id": "9"}})
    assert sent.status == 201, sent.body
    doc = await _run(api, run, "completed")
    tell = next(line for line in doc["timeline"] if line.get("step") == "tell")
    assert tell["what"] == "sent" and tell["result"] is True
    assert tell["inputs"]["steps"]["wait"]["matched"] is True
    inbox = await api.get("/v1/users/carol/inbox")
    assert [i["title"] for i in inbox.body["items"]] == ["Order 9 shipped"]
