"""``herald worker [--roles projector,...]``: consumer roles in one process.

Default: every registered role. SIGTERM or SIGINT stops gracefully (each role
finishes its batch, acks, releases its leases); a second signal exits at once.
An unknown role exits 2 naming the known ones. With ``HERALD_METRICS_PORT`` the
process serves Prometheus ``/metrics`` (api/metrics_server.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from herald.api.metrics_server import serve_metrics
from herald.command import EXIT_OK, UsageError, command, connected, load_settings
from herald.consumers.errors import UnknownRoleError
from herald.consumers.metrics import consumer_metrics
from herald.consumers.roles import check_roles, resolve, run_roles
from herald.streams.log import get_logger
from herald.streams.settings import Settings

log = get_logger("herald.worker")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--roles", default="",
                        help="comma-separated roles (default: all registered), e.g. projector")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@command
def main(args: argparse.Namespace) -> int:
    try:
        names = resolve(_names(args.roles))
    except UnknownRoleError as exc:
        raise UsageError(str(exc)) from exc
    settings = load_settings()
    check_roles(names, settings)  # a provider's missing settings: exit 2 before connecting
    return connected(lambda settings, redis: _work(names, settings, redis), settings,
                     tune_collector=True)  # a long decode loop: see streams/process.py


async def _work(names: list[str], settings: Settings, redis: Any) -> int:
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            print("herald: stopping now", file=sys.stderr)
            os._exit(130)
        print(f"herald: {signal.Signals(signum).name}: finishing batches, releasing leases",
              file=sys.stderr)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    serving = None
    if settings.metrics_port is not None:
        serving = await serve_metrics(settings, redis, consumer_metrics())
        log.info("metrics_started", url=f"{serving.url}/metrics")
    try:
        await run_roles(names, settings, redis, stop)
    finally:
        if serving is not None:
            await serving.stop()
    return EXIT_OK
