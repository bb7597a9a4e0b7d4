"""``herald workflow put|list|show`` and ``herald explain``: real processes, every
definition error printed by path (exit 2), a run explained from the log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.streams.settings import Settings
from tests.consumers.workflows.conftest import Deployment
from tests.scripts.test_cmd_publish import herald

pytestmark = pytest.mark.slow

REMIND = {"example": {"order_id": "1"},
          "steps": [{"id": "hi", "type": "send", "channels": ["in_app"],
                     "title": "Order {{ order_id }}"},
                    {"id": "sms", "type": "send", "channels": ["sms"], "title": "SMS",
                     "if": "!steps.hi.read"}]}


async def test_put_lists_every_error_and_registers_versions(settings: Settings, redis: Any,
                                                            tmp_path: Path) -> None:
    d = Deployment(settings, redis)
    d.start()  # the projector: a second put reads the first version
    try:
        await asyncio.to_thread(_put_list_show, settings, tmp_path)
    finally:
        await d.close()


def _put_list_show(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text(orjson.dumps({"steps": [
        {"id": "a", "type": "wait_for", "event": "x"},
        {"id": "a", "type": "send", "channels": ["in_app"], "title": "t", "if": "steps.b.read"},
        {"id": "z", "type": "jump"}]}).decode())
    done = herald(settings, "workflow", "put", str(bad))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["steps.0.timeout", "steps.1.id",
                                                       "steps.1.if", "steps.2.type"], lines
    good = tmp_path / "remind.json"
    good.write_text(orjson.dumps(REMIND).decode())
    first = herald(settings, "workflow", "put", str(good))
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout)["version"] == 1
    for _ in range(100):  # until projected
        if herald(settings, "workflow", "list").stdout:
            break
        time.sleep(0.1)
    again = herald(settings, "workflow", "put", str(good))
    assert orjson.loads(again.stdout) == {"key": "remind", "version": 1, "created": False,
                                          "position": None}
    listed = herald(settings, "workflow", "list")
    assert listed.stdout.split() == ["remind", "v1"]
    shown = herald(settings, "workflow", "show", "remind")
    assert orjson.loads(shown.stdout)["definition"] == REMIND
    missing = herald(settings, "workflow", "show", "nope")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    unreadable = herald(settings, "workflow", "put", str(tmp_path / "absent.json"))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr


async def test_explain_says_why(settings: Settings, redis: Any) -> None:
    d = Deployment(settings, redis)
    d.start()
    try:
        await d.register("remind", REMIND)
        run = await d.trigger("erin", "remind", {"order_id": "7"})
        await d.ended("erin", run)
    finally:
        await d.close()
    done = await asyncio.to_thread(herald, settings, "explain", run)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "hi (#0) sent" in text
    assert "sms (#1) sent  because '!steps.hi.read' was true as of" in text
    assert "run completed" in text
    as_json = orjson.loads((await asyncio.to_thread(herald, settings, "explain", run,
                                                    "--json")).stdout)
    assert as_json["status"] == "completed" and as_json["user"] == "erin"
    nid = next(line["notification_id"] for line in as_json["timeline"]
               if line.get("step") == "sms")
    by_note = await asyncio.to_thread(herald, settings, "explain", nid, "--json")
    assert orjson.loads(by_note.stdout)["run_id"] == run
    unknown = await asyncio.to_thread(herald, settings, "explain", "nope")
    assert unknown.returncode == 1 and "not a workflow run" in unknown.stderr
