"""Client side of scripts/bench_live.py: raw-socket SSE clients and inbox pollers.

:class:`SSEClient` is one asyncio protocol per connection (no task, no HTTP client
library), so one process can hold 10,000 streams; it records the publish → receipt
latency of every ``item.created`` from the send time the publisher put in the
notification's data. :func:`poll_inbox` is the seed's design: GET the inbox every
few seconds and notice new items.
"""

from __future__ import annotations

import asyncio
import random
import time
from functools import partial

import aiohttp
import orjson

CONNECT_BATCH = 50  # connections opened at once, waiting for each batch's `ready`


class Sink:
    """Latencies of item.created receipts, ready count, errors."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ready = 0
        self.errors = 0
        self.closed = 0
        self.target = 0
        self.reached = asyncio.Event()

    def on_ready(self) -> None:
        self.ready += 1
        if self.ready >= self.target:
            self.reached.set()

    async def wait_ready(self, count: int, within: float) -> None:
        self.target = count
        self.reached.clear()
        if self.ready >= count:
            return
        try:
            await asyncio.wait_for(self.reached.wait(), within)
        except TimeoutError:
            pass


class SSEClient(asyncio.Protocol):
    """One SSE connection: sends the GET, reads data lines, never a task of its own.

    Chunked framing lines never start with ``data:``; every event is written whole
    by the server, so complete lines are enough.
    """

    def __init__(self, request: bytes, sink: Sink) -> None:
        self.request = request
        self.sink = sink
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.status_checked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data
        if not self.status_checked:
            if b"\r\n" not in buffer:
                self.buffer = buffer
                return
            self.status_checked = True
            if not buffer.startswith(b"HTTP/1.1 200"):
                self.sink.errors += 1
        *lines, self.buffer = buffer.split(b"\n")
        for line in lines:
            if not line.startswith(b"data: "):
                continue
            message = orjson.loads(line[6:])
            kind = message["type"]
            if kind == "item.created":
                self.sink.latencies.append(now - message["item"]["data"]["sent"])
            elif kind == "ready":
                self.sink.on_ready()

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink.closed += 1


async def open_streams(port: int, key: str, users: list[str], per_user: int, sink: Sink
                       ) -> tuple[list[SSEClient], float]:
    """Open ``per_user`` streams for each user, in batches; (clients, seconds taken)."""
    loop = asyncio.get_running_loop()
    clients: list[SSEClient] = []
    started = time.monotonic()
    targets = [u for u in users for _ in range(per_user)]
    for i in range(0, len(targets), CONNECT_BATCH):
        batch = targets[i:i + CONNECT_BATCH]
        made = await asyncio.gather(*(loop.create_connection(
            partial(SSEClient, sse_request(port, u, key), sink), "127.0.0.1", port)
            for u in batch))
        clients += [protocol for _transport, protocol in made]
        await sink.wait_ready(len(clients), 30)
    return clients, time.monotonic() - started


def sse_request(port: int, user: str, key: str) -> bytes:
    return (f"GET /v1/users/{user}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n").encode()


def close_streams(clients: list[SSEClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()


async def poll_inbox(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                     every_s: float, stop: asyncio.Event, latencies: list[float],
                     counts: dict[str, int]) -> None:
    """GET ``url`` every ``every_s`` until ``stop``; latency of each item first seen."""
    seen: set[str] = set()
    first = True
    await asyncio.sleep(random.uniform(0, every_s))
    while not stop.is_set():
        due = time.monotonic() + every_s
        try:
            async with session.get(url, headers=headers) as r:
                body = await r.read()
                ok = r.status == 200
        except aiohttp.ClientError:
            ok = False
        now = time.time()
        counts["requests"] += 1
        if not ok:
            counts["errors"] += 1
        else:
            for item in orjson.loads(body)["items"]:
                if item["id"] not in seen:
                    seen.add(item["id"])
                    if not first and "sent" in item["data"]:
                        latencies.append(now - item["data"]["sent"])
            first = False
        await asyncio.sleep(max(0.0, due - time.monotonic()))
