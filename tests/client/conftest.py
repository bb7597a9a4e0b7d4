"""Client test fixtures: a real ``herald run`` subprocess (on the session's server, in its
own key prefix) and a small proxy in front of it that can misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from herald.streams.server import ServerHandle, free_port
from tests.api.conftest import SECRET, SERVICE_KEY
from tests.scripts.test_server_commands import base_env

HERALD = str(Path(sys.executable).with_name("herald"))
START_S = 30.0


@dataclass
class Running:
    """A ``herald run`` subprocess: where it answers and its credentials."""

    url: str
    api_key: str
    token_secret: str
    prefix: str
    proc: subprocess.Popen[bytes]
    log: Path


def wait_answers(url: str, proc: subprocess.Popen[bytes] | None = None,
                 within: float = START_S) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc is None or proc.poll() is None, "the server exited early"
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered /healthz")


@contextlib.contextmanager
def herald_run(redis_url: str, folder: Path, **extra: str) -> Iterator[Running]:
    """``herald run`` on ``redis_url`` (a fresh prefix); SIGINT and a wait on exit."""
    port = free_port()
    prefix = f"c{uuid.uuid4().hex[:10]}"
    env = base_env(REDIS_URL=redis_url, HERALD_PREFIX=prefix, HERALD_PARTITIONS="8",
                   HERALD_API_KEYS=SERVICE_KEY, HERALD_TOKEN_SECRET=SECRET,
                   HERALD_DATA_DIR=str(folder / "data"), HERALD_LOG_FORMAT="json",
                   HERALD_ACCESS_LOG="false", HERALD_API_RATE_USER="off",
                   HERALD_API_RATE_KEY="off", **extra)
    log = folder / "herald.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([HERALD, "run", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answers(url, proc)
        yield Running(url, SERVICE_KEY, SECRET, prefix, proc, log)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def herald_server(redis_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Running]:
    with herald_run(redis_server.url, tmp_path_factory.mktemp("herald-run")) as running:
        yield running


@dataclass
class Proxy:
    """An HTTP proxy on 127.0.0.1 in its own thread and loop, in front of ``target``.

    ``fail_after_forward`` requests (counted down) are forwarded, then answered 503
    with ``Retry-After: 0``; ``hang_after_forward`` ones are forwarded, then held for
    ``hang_s`` before the real answer. ``seen`` counts forwarded requests by path.
    """

    target: str
    fail_after_forward: int = 0
    hang_after_forward: int = 0
    hang_s: float = 3.0
    seen: dict[str, int] = field(default_factory=dict)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert request.path_qs
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in {"host", "content-length"}}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, self.target + request.path_qs, data=body or None,
                headers=headers) as answer:
            raw = await answer.read()
            kept = {k: v for k, v in answer.headers.items()
                    if k.lower() in {"content-type", "retry-after", "x-request-id"}}
        self.seen[request.path] = self.seen.get(request.path, 0) + 1
        if self.fail_after_forward > 0:
            self.fail_after_forward -= 1
            return web.json_response({"type": "urn:test:proxy", "title": "Unavailable",
                                      "status": 503, "detail": "proxy says try again"},
                                     status=503, headers={"Retry-After": "0"},
                                     content_type="application/problem+json")
        if self.hang_after_forward > 0:
            self.hang_after_forward -= 1
            await asyncio.sleep(self.hang_s)
        return web.Response(body=raw, status=answer.status, headers=kept)

    def _serve(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            ready.set()
            await self._stop.wait()
            await runner.cleanup()
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in left:  # handlers still holding an answer back
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.close()

    def __enter__(self) -> Proxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
