"""Serving an app on a socket, and stopping cleanly (used by the CLI, tests and benchmarks).

The app's own access log replaces aiohttp's (``access_log=None``). Shutdown stops
accepting, gives in-flight requests ``SHUTDOWN_S`` to finish, then runs the
app's cleanup (closing its Redis pool). Signals are handled by the caller
(:func:`stop_on_signals`), so one process can serve the API next to workers.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import redis
from aiohttp import web

from herald.streams.errors import RedisUnavailableError
from herald.streams.process import tune_gc

SHUTDOWN_S = 5.0
BACKLOG = 1024


@dataclass
class Serving:
    """A started site; ``url`` is where it answers."""

    runner: web.AppRunner
    url: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False) -> Serving:
    """Start ``app`` on ``host:port`` (port 0: a free one).

    Raises OSError when it cannot bind, RedisUnavailableError when the app's
    start-up cannot reach Redis.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_S)
    try:
        await runner.setup()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        await runner.cleanup()
        raise RedisUnavailableError(f"cannot reach Redis at start-up: {exc}") from exc
    site = web.TCPSite(runner, host, port, backlog=BACKLOG, reuse_port=reuse_port or None)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    tune_gc()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return Serving(runner, f"http://{shown}:{bound_port}", int(bound_port))


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (handlers installed on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
