"""Two producers outside Python, written from PROTOCOL.md alone, publish through the
append script: a Node.js one (tests/protocol/node) and a bash + valkey-cli one
(tests/protocol/shell). Both pass the conformance vectors; their events land once in
the right inbox, and publishing twice under one idempotency key appends once.

``make test`` installs the Node one's packages (``npm ci``); without Node or its
packages its tests skip, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from herald.consumers.group.dead_letters import DeadLetters
from herald.consumers.projection.queries import InboxQueries
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.server import find_cli_binary
from herald.streams.settings import Settings
from tests.consumers.helpers import start_projector
from tests.protocol import vectors
from tests.protocol.test_vectors import FILES

HERE = Path(__file__).resolve().parent
NODE_DIR, SHELL = HERE / "node", HERE / "shell" / "publish.sh"
NODE = shutil.which("node")
node_ready = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules").is_dir(),
    reason="needs node and `npm ci` in tests/protocol/node (make test does both)")


def env_for(settings: Settings) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
            "REDIS_URL": str(settings.redis_url), "HERALD_PREFIX": settings.prefix,
            "VALKEY_CLI": find_cli_binary(), "HERALD_REPO": str(vectors.REPO)}


def run(args: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout.strip()


def shell(*args: str, env: dict[str, str] | None = None) -> str:
    return run(["bash", str(SHELL), *args], env)


@node_ready
def test_the_node_producer_passes_the_vectors() -> None:
    out = run([str(NODE), str(NODE_DIR / "publish.mjs"), "check", str(vectors.FOLDER)])
    assert out == f"all vectors hold ({len(FILES['entries']['cases'])} entries)"


def test_the_shell_producer_passes_the_vectors() -> None:
    for case in FILES["partitions"]["cases"][::3]:
        assert shell("partition", case["user"], str(case["partitions"])) == str(case["partition"])
    for case in FILES["ids"]["cases"]:
        assert shell("id", str(case["ms"]), case["random_hex"], str(case["partition"])) == \
            case["id"]
    first = FILES["entries"]["cases"][0]  # the created event the shell producer writes
    event = first["event"]
    assert shell("entry", event["i"], event["u"], str(event["ts"]), event["d"]["title"]) == \
        first["entry_hex"]
    assert shell("script") == FILES["script"]["sha1"]


async def _publish_twice(args: list[str], env: dict[str, str]) -> tuple[Any, Any]:
    once = json.loads(await asyncio.to_thread(run, args, env))
    again = json.loads(await asyncio.to_thread(run, args, env))
    return once, again


@node_ready
async def test_node_events_land_once_in_the_inbox(settings: Settings, redis: Any) -> None:
    await _land_once(settings, redis, "nora", "from node, 你好",
                     [str(NODE), str(NODE_DIR / "publish.mjs"), "publish", "--user", "nora",
                      "--title", "from node, 你好", "--key", "node-order-1"])


async def test_shell_events_land_once_in_the_inbox(settings: Settings, redis: Any) -> None:
    await _land_once(settings, redis, "shelly", "来自 shell 的问候",
                     ["bash", str(SHELL), "publish", "shelly", "来自 shell 的问候", "sh-order-1"])


async def _land_once(settings: Settings, redis: Any, user: str, title: str,
                     args: list[str]) -> None:
    producer = Producer(redis, settings)
    await producer.start()  # Herald is set up: herald:meta has the partition count
    once, again = await _publish_twice(args, env_for(settings))
    p = producer.partition(user)
    assert once["partition"] == p and once["duplicate"] is False
    assert again == {**once, "duplicate": True}  # one key: appended once
    assert await redis.xlen(Keys(settings.prefix).stream(p)) == 1
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    try:
        queries = InboxQueries(redis, settings)
        assert await queries.wait_for(p, once["position"], 15)
        page = await queries.page(user)
        assert [(i["id"], i["title"], i["position"]) for i in page.items] == [
            (once["id"], title, once["position"])]
        assert await DeadLetters(redis, settings).letters([p]) == []
    finally:
        stop.set()
        await task
