"""``herald api [--host H] [--port P] [--workers N]``: the HTTP API alone (many may run).

Needs a server: ``REDIS_URL``, or the one ``herald run`` started on the data
folder. With several workers, each is a process bound to the same port
(SO_REUSEPORT; the kernel spreads connections) and they share one Prometheus
registry through ``PROMETHEUS_MULTIPROC_DIR`` (a temporary folder unless set; its
``*.db`` files are cleared at start), so whichever answers ``/metrics`` shows the
sum (api/metrics.py). SIGINT/SIGTERM stop cleanly.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from herald.api.app import create_app
from herald.api.credentials import with_dev_credentials
from herald.api.metrics import MULTIPROC_ENV
from herald.api.server import check_bindable, serve, stop_on_signals, tls_context
from herald.command import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    command,
    load_settings,
    run_async,
    server_url,
)
from herald.streams.log import configure_logging, get_logger
from herald.streams.settings import Settings

log = get_logger("herald.api")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (HERALD_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (HERALD_PORT, 8080)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (HERALD_API_WORKERS, 1)")


def serve_forever(settings: Settings, *, reuse_port: bool = False) -> int:
    """Serve until SIGINT/SIGTERM, on uvloop."""

    async def go() -> int:
        stop = stop_on_signals()
        serving = await serve(create_app(settings), settings.host, settings.port,
                              reuse_port=reuse_port, ssl_context=tls_context(settings))
        log.info("api_started", url=serving.url, pid=os.getpid())
        try:
            await stop.wait()
        finally:
            await serving.stop()
            log.info("api_stopped", pid=os.getpid())
        return EXIT_OK

    return run_async(go)


def _child(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    raise SystemExit(serve_forever(settings, reuse_port=True))


def _run_workers(settings: Settings, count: int) -> int:
    shared = os.environ.get(MULTIPROC_ENV)
    made = not shared
    folder = Path(shared) if shared else Path(tempfile.mkdtemp(prefix="herald-metrics-"))
    for stale in folder.glob("*.db"):  # values of an earlier run would be summed in
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)  # the spawned children inherit it
    try:
        return _supervise(settings, count, folder)
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def _supervise(settings: Settings, count: int, folder: Path) -> int:
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_child, args=(settings,), name=f"herald-api-{i}")
             for i in range(count)]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
        if proc.pid is not None:  # its live gauges leave the sum
            multiprocess.mark_process_dead(proc.pid, str(folder))
    clean = all(proc.exitcode in (0, -signal.SIGTERM) for proc in procs)
    return EXIT_OK if clean else EXIT_FAILED


@command
def main(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    settings = load_settings(host=args.host, port=args.port, api_workers=args.workers)
    tls_context(settings)  # bad TLS files: exit 2 before anything starts
    settings = settings.replace(redis_url=server_url(settings))  # never starts a server
    settings, path = with_dev_credentials(settings, create=False)
    if path is not None:
        log.warning("dev_credentials_used", path=str(path))
    if settings.api_workers == 1:
        return serve_forever(settings)
    check_bindable(settings.host, settings.port)
    return _run_workers(settings, settings.api_workers)
