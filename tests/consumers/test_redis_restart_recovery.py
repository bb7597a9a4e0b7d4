"""The runtime survives a Redis restart: it backs off, reconnects and carries on."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from herald.consumers.group import runtime as runtime_module
from herald.consumers.projection.queries import InboxQueries
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated
from herald.streams.producer import Producer
from herald.streams.server import find_server_binary, free_port, ping
from tests.consumers.helpers import make_settings, start_projector, wait_projected


def _start(port: int, data: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [find_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
         "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        if ping(f"redis://127.0.0.1:{port}/0", 0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


async def test_projection_continues_after_a_redis_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "BACKOFF_MAX_S", 0.3)
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    server = _start(port, data)
    settings = make_settings(f"redis://127.0.0.1:{port}/0", tmp_path, partitions=2)
    redis: Any = connect(settings)
    stop = asyncio.Event()
    try:
        producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
        rt, task = start_projector(settings, redis, stop)
        first = await producer.publish_many(
            [producer.envelope(f"u{i}", NotificationCreated(title="before")) for i in range(10)])
        await wait_projected(queries, first)
        server.terminate()
        server.wait(10)
        await asyncio.sleep(0.5)  # the runtime hits a dead server for a while
        assert not task.done()
        server = _start(port, data)
        second = await producer.publish_many(
            [producer.envelope(f"u{i}", NotificationCreated(title="after")) for i in range(10)])
        await wait_projected(queries, second, timeout=20)
        assert sum([await queries.unread_count(f"u{i}") for i in range(10)]) == 20
        assert rt.handled == 20
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        stop.set()
        await redis.aclose()
        server.terminate()
        server.wait(10)
