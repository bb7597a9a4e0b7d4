"""Child processes of a benchmark: a Herald role in its own process, and its numbers.

``python scripts/benchproc.py api PORT`` serves ``create_app`` on 127.0.0.1:PORT;
``python scripts/benchproc.py worker 0`` runs the projector role — both on uvloop,
configured from the environment, until SIGTERM. The parent reads a child's
resident memory and CPU time from /proc (Linux).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from herald.api.server import serve, stop_on_signals
from herald.streams.connection import connect
from herald.streams.log import configure_logging
from herald.streams.settings import Settings


def machine() -> str:
    """The machine line every benchmark reports."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def child_env(url: str, folder: Path, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's child processes: this one without its
    ``HERALD_*`` variables, then the server, a prefix of its own, JSON logs, a data
    folder, request rate limits that apply (their Redis step is part of the cost) but
    never bind, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(REDIS_URL=url, HERALD_PREFIX=prefix, HERALD_LOG_FORMAT="json",
               HERALD_DATA_DIR=str(folder / "data"),
               HERALD_API_RATE_KEY="1000000/s", HERALD_API_RATE_USER="1000000/s", **extra)
    return env


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def serve_main(kind: str, port: int) -> None:
    """Child process: the API on ``port``, or the projector role, until SIGTERM."""
    import uvloop

    from herald.api.app import create_app
    from herald.consumers.roles import ROLES

    raise_fd_limit()
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)

    async def go() -> None:
        stop = stop_on_signals()
        if kind == "api":
            serving = await serve(create_app(settings), "127.0.0.1", port)
            await stop.wait()
            await serving.stop()
            return
        redis = connect(settings)
        try:
            await ROLES["projector" if kind == "worker" else kind](settings, redis, stop)
        finally:
            await redis.aclose()

    uvloop.run(go())


CHILDREN: list[subprocess.Popen[bytes]] = []


def spawn(kind: str, env: dict[str, str], port: int = 0) -> subprocess.Popen[bytes]:
    """Start ``kind`` (``api``, ``worker`` = the projector, or another role's name, e.g.
    ``fanout``) in a child process with ``env``."""
    proc = subprocess.Popen([sys.executable, __file__, kind, str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    CHILDREN.append(proc)
    return proc


def stop_children(wait_s: float = 15.0) -> None:
    """SIGTERM every child still running, then SIGKILL those that outlive ``wait_s``."""
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.terminate()
    for proc in CHILDREN:
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    CHILDREN.clear()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_up(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]
                  ) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            async with session.get(url + "/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API did not come up")


if __name__ == "__main__":
    serve_main(sys.argv[1], int(sys.argv[2]))
