"""``herald workflow simulate``: a candidate against the recorded past, counted per channel,
with the runs that differ — and every live key byte-identical before and after."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import orjson
import pytest

from herald.consumers.workflows.simulate import Simulator
from herald.streams.settings import Settings
from tests.consumers.workflows.conftest import SEED_WORKFLOW, Deployment
from tests.consumers.workflows.test_scenario import _reminder, _start
from tests.scripts.test_cmd_publish import herald

pytestmark = pytest.mark.slow


async def dump_all(redis: Any, settings: Settings) -> dict[bytes, tuple[bytes, int]]:
    """Every key of the prefix: its DUMP (type, value, encoding) and its expiry time."""
    out = {}
    async for key in redis.scan_iter(match=f"{settings.prefix}*", count=1000):
        out[key] = (await redis.dump(key), await redis.pexpiretime(key))
    return out


async def test_a_candidate_is_counted_against_live_and_nothing_is_touched(
        deployment_wf: Deployment) -> None:
    d = deployment_wf
    began = int(time.time() * 1000) - 1000
    await _start(d, "alice")  # does nothing: one SMS
    nid = await _reminder(d, "bob", (await _start(d, "bob"))[0])
    await d.read("bob", nid)  # reads the reminder: no SMS
    run_c, _ = await _start(d, "carol")
    await _reminder(d, "carol", run_c)
    await d.business("carol", "order.paid", {"order_id": "A1"})  # pays: stops
    for user in ("alice", "bob", "carol"):
        runs = [e.id for e in await d.log(user) if e.type == "workflow.triggered"]
        await d.ended(user, runs[0])
    ended = int(time.time() * 1000) + 1000
    # the candidate sends the SMS whatever the user did with the reminder
    candidate = copy.deepcopy(SEED_WORKFLOW)
    del candidate["steps"][-1]["if"]
    await d.close()  # nothing runs any more: the keys hold still
    before = await dump_all(d.redis, d.settings)
    live = {v: SEED_WORKFLOW for v in range(1, d.versions["order_unpaid"] + 1)}
    report = (await Simulator(d.redis, d.settings).run(
        "order_unpaid", candidate, live, began, ended)).as_dict()
    assert report["runs"] == 3
    # placed (3 runs) and alice's; the candidate adds bob's (carol paid before the SMS)
    assert report["channels"]["sms"] == {"candidate": 5, "live": 4}
    assert report["channels"]["wechat"] == {"candidate": 3, "live": 3}
    assert report["differing_runs"] == 1
    [bob] = report["sample"]
    assert bob["user"] == "bob" and bob["live"] == ["placed", "remind"]
    assert bob["candidate"] == ["placed", "remind", "sms"]
    # the live version itself reproduces what live did
    same = (await Simulator(d.redis, d.settings).run(
        "order_unpaid", SEED_WORKFLOW, live, began, ended)).as_dict()
    assert same["differing_runs"] == 0, same["sample"]
    assert same["channels"]["sms"] == {"candidate": 4,
                                                                      "live": 4}
    # the command line: the same report, and nothing written either
    path = d.settings.data_dir / "candidate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(candidate))
    done = await asyncio.to_thread(herald, d.settings, "workflow", "simulate", "order_unpaid",
                                   "--file", str(path), "--from", str(began), "--to",
                                   str(ended), "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["channels"]["sms"] == {"candidate": 5, "live": 4}
    text = await asyncio.to_thread(herald, d.settings, "workflow", "simulate", "order_unpaid",
                                   "--version", "1", "--from", str(began), "--to", str(ended))
    assert "0 runs differ" in text.stdout, text.stdout + text.stderr
    assert await dump_all(d.redis, d.settings) == before
