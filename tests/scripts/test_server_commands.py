"""The commands: `herald token`, `herald api` (access log lines), `herald run` (all-in-one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import pytest

from herald.streams.server import free_port
from herald.streams.settings import Settings
from tests.api.conftest import SECRET, SERVICE_KEY

HERALD = str(Path(sys.executable).with_name("herald"))


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HERALD_") and k != "REDIS_URL"}
    env.update(extra)
    return env


async def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HERALD, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_token_command(tmp_path: Path) -> None:
    env = base_env(HERALD_TOKEN_SECRET=SECRET, HERALD_DATA_DIR=str(tmp_path))
    code, out, err = await run("token", "alice", "--ttl", "2h", env=env)
    assert code == 0, err
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["exp"] - time.time() == pytest.approx(7200, abs=5)
    code, _, err = await run("token", "bad\tuser", env=env)
    assert code == 2 and "user" in err
    code, _, err = await run("token", "alice", env=base_env(HERALD_DATA_DIR=str(tmp_path)))
    assert code == 2 and "HERALD_TOKEN_SECRET" in err


async def wait_healthy(session: aiohttp.ClientSession, url: str, proc: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.returncode is None, "the server exited early"
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise AssertionError("the server never answered /healthz")


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_api_command_serves_and_logs_requests(settings: Settings, workers: str) -> None:
    port = free_port()
    env = base_env(REDIS_URL=settings.redis_url or "", HERALD_PREFIX=settings.prefix,
                   HERALD_PARTITIONS="8", HERALD_API_KEYS=SERVICE_KEY,
                   HERALD_LOG_FORMAT="json", HERALD_DATA_DIR=str(settings.data_dir))
    proc = await asyncio.create_subprocess_exec(
        HERALD, "api", "--port", str(port), "--workers", workers, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[dict[str, Any]] = []

    async def collect() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            if raw.startswith(b"{"):
                lines.append(orjson.loads(raw))  # every line whole, even from two workers

    collector = asyncio.create_task(collect())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while sum(1 for line in lines if line.get("event") == "api_started") < int(workers):
            assert time.monotonic() < deadline and proc.returncode is None, lines[-5:]
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, url, proc)
            headers = {"Authorization": f"Bearer {SERVICE_KEY}", "X-Request-Id": "trace-77"}
            async with session.post(f"{url}/v1/notifications", headers=headers,
                                    json={"user": "zoe", "title": "hi"}) as response:
                assert response.status == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(collector, 10)
    assert proc.returncode == 0, lines[-5:]
    [served] = [line for line in lines if line.get("request_id") == "trace-77"]
    assert served["event"] == "request_handled"
    assert served["route"] == "/v1/notifications" and served["status"] == 201
    assert served["method"] == "POST" and served["duration_ms"] > 0 and "key" in served
    assert served["level"] == "info" and served["timestamp"].endswith("Z")
    assert sum(1 for line in lines if line.get("event") == "api_stopped") == int(workers)


async def test_run_command_all_in_one(tmp_path: Path) -> None:
    """No REDIS_URL: a private server starts; publish → inbox via the roles; SIGINT stops all."""
    port = free_port()
    data = tmp_path / "data"
    env = base_env(HERALD_DATA_DIR=str(data), HERALD_PORT=str(port), HERALD_PARTITIONS="4",
                   HERALD_LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        HERALD, "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert first.startswith(f"Herald is running at http://127.0.0.1:{port}/"), first
        assert "projector" in first
        key = orjson.loads((data / "credentials.json").read_bytes())["api_key"]
        assert (data / "server.url").exists()
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{url}/v1/notifications",
                                    json={"user": "yan", "title": "你好"}) as response:
                assert response.status == 201
            deadline = time.monotonic() + 15
            while True:
                async with session.get(f"{url}/v1/users/yan/inbox") as response:
                    items = (await response.json())["items"]
                if items:
                    break
                assert time.monotonic() < deadline, "the projector never applied the event"
                await asyncio.sleep(0.1)
            assert items[0]["title"] == "你好"
        # another command on the same data folder connects to this server (server.url)
        code, out, err = await run("status", "--json", env=env)
        assert code == 0, err
        checkpoints = [row["checkpoint"] for row in orjson.loads(out)["partitions"]]
        assert sum(1 for c in checkpoints if c) == 1, out
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert not (data / "server.url").exists()  # the private server was stopped
    assert b"herald_stopped" in err
