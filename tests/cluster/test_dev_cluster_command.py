"""`herald dev-cluster`: a cluster that Herald's clients reach with the printed
environment, stopped by Ctrl-C; and its usage errors."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import orjson
import pytest
import redis

from herald.streams.server import ping

HERALD = str(Path(sys.executable).with_name("herald"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HERALD_") and k != "REDIS_URL"}
    env.update(HERALD_DATA_DIR=str(tmp_path / "data"), HERALD_LOG_FORMAT="json")
    return env


async def _start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """``herald dev-cluster --masters 1 --replicas 0`` and the environment it printed."""
    proc = await asyncio.create_subprocess_exec(
        HERALD, "dev-cluster", "--masters", "1", "--replicas", "0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            async for raw in proc.stdout:
                if (match := re.search(r"export (REDIS_URL=\S+) (HERALD_REDIS_CLUSTER=true)",
                                       raw.decode())):
                    return proc, dict(kv.split("=", 1) for kv in match.groups())
        raise AssertionError("no REDIS_URL line")
    except BaseException:
        await _end(proc)
        raise


async def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)  # stops the nodes too
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_dev_cluster_runs_until_ctrl_c(tmp_path: Path) -> None:
    env = _env(tmp_path)
    proc, exported = await _start(env)
    try:
        url = exported["REDIS_URL"]
        assert url.startswith("redis://127.0.0.1:")
        client = redis.RedisCluster.from_url(url, decode_responses=True)
        try:
            assert client.ping()
            assert client.cluster_info()["cluster_state"] == "ok"
        finally:
            client.close()
        # The printed environment is all a Herald command needs.
        publish = await asyncio.create_subprocess_exec(
            HERALD, "publish", "--user", "alice", "--title", "hello", env={**env, **exported},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(publish.communicate(), 30)
        assert publish.returncode == 0, err.decode()
        assert orjson.loads(out)["duplicate"] is False
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert not ping(url, timeout=0.5), "a node outlived the command"
    finally:
        await _end(proc)


async def test_dev_cluster_nodes_die_with_a_killed_command(tmp_path: Path) -> None:
    proc, exported = await _start(_env(tmp_path))
    try:
        proc.kill()
        await proc.wait()
        for _ in range(100):
            if not ping(exported["REDIS_URL"], timeout=0.2):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("an orphaned node still answers")
    finally:
        await _end(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--masters", "0"], "--masters must be between 1 and 16"),
    (["--replicas", "5"], "--replicas must be between 0 and 4"),
    (["--masters", "three"], "invalid int value"),
])
async def test_dev_cluster_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        HERALD, "dev-cluster", *args, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert message in err.decode() and b"Traceback" not in err
    assert not (tmp_path / "data" / "cluster").exists()  # nothing started
