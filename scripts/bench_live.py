"""Benchmark live push (SSE) against the seed's design: browsers polling the inbox.

Bounded and loopback only. Starts a private server in a temporary folder unless
``REDIS_URL`` is set (then works under a fresh prefix and deletes its keys), then,
each in its own process (scripts/benchproc.py): the API (``create_app``) and the
projector role. This process is the client side (scripts/live_clients.py):
raw-socket SSE clients (one asyncio protocol each, no task per connection), the
poller baseline, and the publisher, which appends through the producer at a
steady ``--rate`` to random users among 1,000 and stamps each notification with
its send time.

Phases, each ``--duration`` seconds of publishing:

1. ``sse_1k``: 1,000 SSE connections, one per user;
2. ``sse_10k``: 10,000 SSE connections, ten per user — also the API process's
   memory per idle connection (RSS growth / connections) and its idle CPU;
3. ``poll``: the baseline — 1,000 clients each GETting its inbox every 2 s; the
   latency is from publish to the poll that first shows the item, and the
   requests/s the API absorbs.

Latency is publish → client receipt (wall clock, one machine). The file
descriptor limit is raised to the hard limit in every process. With ``--json``,
one JSON object (keys include ``sse_1k_p99_ms``, ``sse_10k_p99_ms``,
``poll_p50_ms``, ``bytes_per_idle_conn``).

    python scripts/bench_live.py [--duration 10] [--rate 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from herald.benchproc import (
    child_env,
    cpu_seconds,
    raise_fd_limit,
    rss_bytes,
    spawn,
    stop_children,
    wait_up,
)
from herald.live_clients import Sink, close_streams, open_streams, poll_inbox
from herald.loadgen import percentile_ms
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated
from herald.streams.producer import Producer
from herald.streams.server import free_port, scratch_server
from herald.streams.settings import Settings

KEY = "bench-service-key-" + "k" * 16
SECRET = "bench-token-secret-" + "s" * 48
USERS = [f"u{i:04d}" for i in range(1000)]
POLL_EVERY_S = 2.0
DRAIN_S = 2.0


_T0 = time.monotonic()


def progress(message: str) -> None:
    """A progress line on stderr (stdout stays for the result)."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------- phases
async def publish(producer: Producer, rate: float, duration: float) -> int:
    """Steady ``rate`` per second for ``duration`` (open loop: a slow append is not hidden)."""
    total = int(rate * duration)
    start = time.perf_counter()
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        user = random.choice(USERS)
        payload = NotificationCreated(title=f"bench {i}", body="live push benchmark",
                                      data={"sent": time.time(), "seq": i})
        await producer.publish(producer.envelope(user, payload))
    return total


async def wait_connections(session: aiohttp.ClientSession, url: str, want: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with session.get(url + "/v1/admin/status",
                               headers={"Authorization": f"Bearer {KEY}"}) as r:
            doc = await r.json()
        if doc["live"]["connections"] == want:
            return
        await asyncio.sleep(0.2)


async def sse_phase(args: argparse.Namespace, producer: Producer, port: int, per_user: int,
                    api_pid: int, session: aiohttp.ClientSession) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    sink = Sink()
    rss_before = rss_bytes(api_pid)
    progress(f"opening {len(USERS) * per_user} SSE connections")
    clients, connect_s = await open_streams(port, KEY, USERS, per_user, sink)
    progress(f"{sink.ready} ready in {connect_s:.1f}s ({sink.errors} refused); idle, then "
             f"publishing {args.rate:.0f}/s for {args.duration:.0f}s")
    await asyncio.sleep(2.0)  # settle: buffers allocated, GC ran
    rss_after = rss_bytes(api_pid)
    cpu0, t0 = cpu_seconds(api_pid), time.monotonic()
    await asyncio.sleep(3.0)
    idle_cpu = (cpu_seconds(api_pid) - cpu0) / (time.monotonic() - t0) * 100
    cpu0, t0 = cpu_seconds(api_pid), time.monotonic()
    published = await publish(producer, args.rate, args.duration)
    busy_cpu = (cpu_seconds(api_pid) - cpu0) / (time.monotonic() - t0) * 100
    await asyncio.sleep(DRAIN_S)
    connections = len(clients)
    progress(f"received {len(sink.latencies)} of {published * per_user}; closing")
    close_streams(clients)
    await wait_connections(session, url, 0)
    lat = sink.latencies
    return {
        "connections": connections, "ready": sink.ready, "connect_s": round(connect_s, 2),
        "published": published, "received": len(lat),
        "missing": published * per_user - len(lat), "errors": sink.errors,
        "p50_ms": percentile_ms(lat, 0.50), "p99_ms": percentile_ms(lat, 0.99),
        "max_ms": max(lat) * 1000 if lat else 0.0,
        "bytes_per_idle_conn": max(0, rss_after - rss_before) // max(1, connections),
        "idle_cpu_pct": round(idle_cpu, 1), "cpu_pct": round(busy_cpu, 1),
    }


async def poll_phase(args: argparse.Namespace, producer: Producer, port: int,
                     api_pid: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    counts = {"requests": 0, "errors": 0}
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {KEY}"}

    progress(f"{len(USERS)} pollers, every {POLL_EVERY_S:.0f}s")
    connector = aiohttp.TCPConnector(limit=len(USERS))
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(poll_inbox(session, f"{url}/v1/users/{u}/inbox?limit=20",
                                                headers, POLL_EVERY_S, stop, latencies, counts))
                 for u in USERS]
        await asyncio.sleep(POLL_EVERY_S + 0.5)  # every poller has its baseline
        cpu0, t0, req0 = cpu_seconds(api_pid), time.monotonic(), counts["requests"]
        published = await publish(producer, args.rate, args.duration)
        await asyncio.sleep(POLL_EVERY_S + 0.5)  # the last items are polled once
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(api_pid) - cpu0) / elapsed * 100
        rps = (counts["requests"] - req0) / elapsed
        stop.set()
        await asyncio.gather(*tasks)
    return {"clients": len(USERS), "published": published, "received": len(latencies),
            "p50_ms": percentile_ms(latencies, 0.50), "p99_ms": percentile_ms(latencies, 0.99),
            "requests_per_s": round(rps, 1), "errors": counts["errors"], "cpu_pct": round(cpu, 1)}


def ignored_signal_cost_us() -> float:
    """CPU per change signal for a user with no connection here (the per-partition cost)."""
    from herald.api.live.subscriber import Subscriber
    from herald.streams.keys import Keys
    from herald.streams.signals import _Link

    keys = Keys("bench")
    channel = keys.signal_channel(3)
    subscriber = Subscriber(None, keys, lambda p, u, x: None, lambda p: None)
    subscriber._channels[channel] = 3
    signals = subscriber._signals  # the path a message takes: the pub/sub reader on
    signals._wanted.add(channel)
    link = _Link("server", None, None)
    message = {"type": "smessage", "channel": channel.encode(),
               "data": b'{"users":{"someone-else":"1700000000000-0"}}'}
    rounds = 100_000
    started = time.perf_counter()
    for _ in range(rounds):
        signals._dispatch(link, message)
    return (time.perf_counter() - started) / rounds * 1e6


async def measure(args: argparse.Namespace, settings: Settings, env: dict[str, str]
                  ) -> dict[str, Any]:
    port = free_port()
    api = spawn("api", env, port)
    spawn("worker", env)
    redis = connect(settings)
    try:
        producer = Producer(redis, settings)
        await producer.start()
        async with aiohttp.ClientSession() as session:
            await wait_up(session, f"http://127.0.0.1:{port}", api)
            one = await sse_phase(args, producer, port, 1, api.pid, session)
            ten = await sse_phase(args, producer, port, 10, api.pid, session)
            async with session.get(f"http://127.0.0.1:{port}/v1/admin/status",
                                   headers={"Authorization": f"Bearer {KEY}"}) as r:
                live = (await r.json())["live"]
        poll = await poll_phase(args, producer, port, api.pid)
    finally:
        await redis.aclose()
        stop_children()
    return {
        "rate_per_s": args.rate, "duration_s": args.duration, "users": len(USERS),
        "sse_1k_p50_ms": one["p50_ms"], "sse_1k_p99_ms": one["p99_ms"],
        "sse_10k_p50_ms": ten["p50_ms"], "sse_10k_p99_ms": ten["p99_ms"],
        "sse_10k_max_ms": ten["max_ms"], "sse_10k_connect_s": ten["connect_s"],
        "sse_1k_missing": one["missing"], "sse_10k_missing": ten["missing"],
        "sse_errors": one["errors"] + ten["errors"],
        "bytes_per_idle_conn": ten["bytes_per_idle_conn"],
        "sse_10k_idle_cpu_pct": ten["idle_cpu_pct"], "sse_10k_cpu_pct": ten["cpu_pct"],
        "sse_1k_cpu_pct": one["cpu_pct"],
        "poll_p50_ms": poll["p50_ms"], "poll_p99_ms": poll["p99_ms"],
        "poll_requests_per_s": poll["requests_per_s"], "poll_cpu_pct": poll["cpu_pct"],
        "poll_errors": poll["errors"],
        "ratio_poll_p50_to_sse_10k_p50": round(poll["p50_ms"] / max(ten["p50_ms"], 1e-3), 1),
        "signals": live["signals"], "signals_ignored": live["signals_ignored"],
        "ignored_signal_us": round(ignored_signal_cost_us(), 2),
        "phases": {"sse_1k": one, "sse_10k": ten, "poll": poll},
    }


async def cleanup(settings: Settings) -> None:
    redis = connect(settings)
    try:
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


def report(r: dict[str, Any]) -> None:
    print(f"publishing {r['rate_per_s']:.0f}/s for {r['duration_s']:.0f}s per phase to "
          f"{r['users']} users (publish -> client receipt)")
    print(f"SSE  1,000 connections: p50 {r['sse_1k_p50_ms']:7.1f} ms  p99 "
          f"{r['sse_1k_p99_ms']:7.1f} ms  missing {r['sse_1k_missing']}")
    print(f"SSE 10,000 connections: p50 {r['sse_10k_p50_ms']:7.1f} ms  p99 "
          f"{r['sse_10k_p99_ms']:7.1f} ms  missing {r['sse_10k_missing']}  "
          f"(connected in {r['sse_10k_connect_s']:.1f}s)")
    print(f"poll every 2 s (1,000): p50 {r['poll_p50_ms']:7.1f} ms  p99 {r['poll_p99_ms']:7.1f} ms"
          f"  {r['poll_requests_per_s']:.0f} req/s absorbed")
    print(f"ratio poll p50 / SSE 10k p50: {r['ratio_poll_p50_to_sse_10k_p50']}x")
    print(f"API process: {r['bytes_per_idle_conn']} bytes per idle SSE connection; CPU "
          f"{r['sse_10k_idle_cpu_pct']}% idle with 10k streams, {r['sse_10k_cpu_pct']}% "
          f"while pushing, {r['poll_cpu_pct']}% absorbing the polls")
    print(f"signals {r['signals']} ({r['signals_ignored']} for users not connected); "
          f"ignoring one costs {r['ignored_signal_us']} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (≤ 30)")
    parser.add_argument("--rate", type=float, default=100.0, help="publishes/s (≤ 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    args.duration = min(max(args.duration, 2.0), 30.0)
    args.rate = min(max(args.rate, 1.0), 1000.0)
    if raise_fd_limit() < 10_000 + 1000 and not args.json:
        print("note: the fd hard limit may be too low for 10,000 connections", file=sys.stderr)
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the children and the server stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with scratch_server() as (url, folder, private):
        result = _run(args, url, folder, private)
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        report(result)
    return 0


def _run(args: argparse.Namespace, url: str, folder: Path, private: bool) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = child_env(url, folder, prefix, HERALD_PARTITIONS="16", HERALD_API_KEYS=KEY,
                    HERALD_TOKEN_SECRET=SECRET, HERALD_LOG_LEVEL="warning",
                    HERALD_ACCESS_LOG="false", HERALD_LIVE_MAX_CONNECTIONS="20000",
                    HERALD_LIVE_MAX_PER_USER="100", HERALD_API_MAX_INFLIGHT="20000")
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("HERALD_")},
                                 redis_url=url)
    import uvloop

    try:
        result = uvloop.run(measure(args, settings, env))
        if not private:
            uvloop.run(cleanup(settings))
    finally:
        stop_children()
    return result


if __name__ == "__main__":
    sys.exit(main())
