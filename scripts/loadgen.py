"""A lean HTTP/1.1 load generator for the benchmarks (loopback, keep-alive, bounded).

A general client (aiohttp's) spends a few hundred microseconds of CPU per
request; on a small machine that CPU is taken from the server being measured.
This one writes pre-built request bytes on persistent connections and reads
``Content-Length`` framed answers — what ``wrk`` does — so nearly all the CPU is
left to the server. It speaks only what Herald's API answers (no chunked bodies).

Closed loop: ``concurrency`` requests always in flight, for ``duration`` seconds.
Open loop: requests sent on a fixed schedule (``rate`` per second); latency is
measured from the scheduled send time, so a stalled server cannot hide its
queueing ("coordinated omission"). Both are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MAX_CONNECTIONS = 512


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Pool:
    """Persistent connections to one host:port; one request at a time per connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        if self._open >= MAX_CONNECTIONS:
            raise RuntimeError("load generator: too many connections (the server stalled)")
        self._open += 1
        return await asyncio.open_connection(self.host, self.port)

    async def send(self, raw: bytes) -> int:
        """Send one request, read its answer; returns the status (599 on a broken link)."""
        reader, writer = await self._connection()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            self._open -= 1
            return 599
        self._idle.append((reader, writer))
        return status

    async def close(self) -> None:
        for _reader, writer in self._idle:
            writer.close()
        self._idle.clear()
        self._open = 0


async def closed_loop(pool: Pool, next_request: Callable[[], bytes], concurrency: int,
                      duration: float) -> tuple[float, int]:
    """(requests/s, errors) with ``concurrency`` requests always in flight."""
    done = errors = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            status = await pool.send(next_request())
            done += 1
            errors += status >= 300
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start), errors


async def open_loop(pool: Pool, next_request: Callable[[], bytes], rate: float,
                    duration: float) -> tuple[list[float], int]:
    """Latencies (s) at a steady offered ``rate``, from each request's scheduled time."""
    total = int(rate * duration)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        status = await pool.send(next_request())
        latencies.append(time.perf_counter() - due)
        errors += status >= 300
    await asyncio.gather(*(one(i) for i in range(total)))
    return latencies, errors


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0
