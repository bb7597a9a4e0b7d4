"""Benchmark the HTTP API's inbox reads and publishing against a bare aiohttp baseline.

Bounded and loopback only. Starts a private server in a temporary folder unless
``REDIS_URL`` is set (then works under a fresh prefix and deletes its keys), seeds
``--users`` inboxes of ``--items`` notifications through the producer and the
projector, then serves, each in its own process on uvloop:

- the API (``create_app``, default settings: access log, auth, rate limits, metrics);
- a bare aiohttp handler doing the same Redis reads (``InboxQueries.page``) with
  no middleware, auth or validation — the ceiling for this work on this machine.

Measured, in one run: inbox GET throughput (closed loop, ``--concurrency``
connections) of both; inbox GET latency p50/p99 at a steady offered load
(``--rate`` req/s, open loop, latency from the scheduled send time so a stall is not
hidden); publish throughput, one notification per request and batches of 100. The
load comes from scripts/loadgen.py (keep-alive, pre-built requests), which leaves
the server nearly all the CPU a general HTTP client would take.

    python scripts/bench_api.py [--duration 5] [--rate 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from herald.api.auth import mint_token
from herald.api.server import serve, stop_on_signals
from herald.benchproc import child_env, wait_up
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.roles import ROLES
from herald.loadgen import Pool, closed_loop, open_loop, percentile_ms, request_bytes
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated
from herald.streams.log import configure_logging
from herald.streams.producer import Producer
from herald.streams.server import free_port, scratch_server
from herald.streams.settings import Settings

KEY = "bench-service-key-" + "k" * 16
SECRET = "bench-token-secret-" + "s" * 48
PAGE = 20


# ------------------------------------------------------------------ servers
def bare_app(settings: Settings) -> web.Application:
    """The baseline: the same InboxQueries.page read, nothing else."""
    queries_key = web.AppKey("queries", InboxQueries)
    app = web.Application()

    async def resources(app: web.Application) -> Any:
        redis = connect(settings)
        app[queries_key] = InboxQueries(redis, settings)
        yield
        await redis.aclose()

    async def inbox(request: web.Request) -> web.Response:
        page = await request.app[queries_key].page(
            request.match_info["user"], limit=int(request.query.get("limit", PAGE)))
        body = {"items": page.items, "next_cursor": page.next_cursor,
                "unread_count": page.unread_count}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/v1/users/{user}/inbox", inbox)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(resources)
    return app


def serve_main(kind: str, port: int) -> None:
    """Child process: serve the API or the bare app until SIGTERM."""
    import uvloop

    from herald.api.app import create_app

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # as `herald api` does

    async def go() -> None:
        stop = stop_on_signals()
        app = create_app(settings) if kind == "api" else bare_app(settings)
        serving = await serve(app, "127.0.0.1", port)
        await stop.wait()
        await serving.stop()

    uvloop.run(go())


def spawn(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------ run
async def seed(settings: Settings, users: list[str], items: int) -> None:
    redis = connect(settings)
    try:
        producer = Producer(redis, settings)
        envs = [producer.envelope(u, NotificationCreated(title=f"item {i}", body="x" * 120,
                                                         data={"n": i}))
                for i in range(items) for u in users]
        last: dict[int, str] = {}
        for i in range(0, len(envs), 1000):
            for appended in await producer.publish_many(envs[i:i + 1000]):
                last[appended.partition] = appended.position
        stop = asyncio.Event()
        task = asyncio.ensure_future(ROLES["projector"](settings, redis, stop))
        queries = InboxQueries(redis, settings)
        for partition, position in last.items():
            if not await queries.wait_for(partition, position, 120):
                raise RuntimeError("the projector did not catch up with the seed")
        stop.set()
        await task
    finally:
        await redis.aclose()


async def measure(
    args: argparse.Namespace, settings: Settings, env: dict[str, str]
) -> dict[str, Any]:
    users = [f"bench-user-{i}" for i in range(args.users)]
    await seed(settings, users, args.items)
    api_proc, api = spawn("api", env)
    bare_proc, bare = spawn("bare", env)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_up(session, api, api_proc)
            await wait_up(session, bare, bare_proc)
        api_pool, bare_pool = pool_for(api), pool_for(bare)
        inbox_api = [request_bytes("GET", f"/v1/users/me/inbox?limit={PAGE}",
                                   {"Authorization": f"Bearer {mint_token(SECRET, u, 3600)}"})
                     for u in users]
        inbox_bare = [request_bytes("GET", f"/v1/users/{u}/inbox?limit={PAGE}", {})
                      for u in users]
        auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

        def notification(i: int) -> dict[str, Any]:
            return {"user": users[i % len(users)], "title": f"bench {i}", "body": "x" * 120}

        singles = [request_bytes("POST", "/v1/notifications", auth,
                                 orjson.dumps(notification(i))) for i in range(500)]
        batches = [request_bytes("POST", "/v1/notifications/batch", auth, orjson.dumps(
            {"notifications": [notification(i * 100 + j) for j in range(100)]}))
            for i in range(20)]

        def pick(requests: list[bytes]) -> Callable[[], bytes]:
            return lambda: random.choice(requests)

        c, d = args.concurrency, args.duration
        for pool, reqs in ((api_pool, inbox_api), (bare_pool, inbox_bare)):  # warm up
            await closed_loop(pool, pick(reqs), c, 1.0)
        rps, err1 = await closed_loop(api_pool, pick(inbox_api), c, d)
        bare_rps, err2 = await closed_loop(bare_pool, pick(inbox_bare), c, d)
        lat, err3 = await open_loop(api_pool, pick(inbox_api), args.rate, d)
        bare_lat, err4 = await open_loop(bare_pool, pick(inbox_bare), args.rate, d)
        pub_rps, err5 = await closed_loop(api_pool, pick(singles), c, d)
        batch_rps, err6 = await closed_loop(api_pool, pick(batches), 4, d)
        await api_pool.close()
        await bare_pool.close()
        return {
            "inbox_get_rps": round(rps, 1),
            "inbox_get_p50_ms": round(percentile_ms(lat, 0.50), 3),
            "inbox_get_p99_ms": round(percentile_ms(lat, 0.99), 3),
            "inbox_get_mean_ms": round(statistics.fmean(lat) * 1000, 3),
            "offered_rate": args.rate,
            "bare_get_rps": round(bare_rps, 1),
            "bare_get_p50_ms": round(percentile_ms(bare_lat, 0.50), 3),
            "bare_get_p99_ms": round(percentile_ms(bare_lat, 0.99), 3),
            "ratio_inbox_to_bare": round(rps / bare_rps, 3),
            "publish_rps": round(pub_rps, 1),
            "publish_batch_100_rps": round(batch_rps, 1),
            "publish_batch_notifications_per_s": round(batch_rps * 100, 1),
            "errors": err1 + err2 + err3 + err4 + err5 + err6,
            "concurrency": c,
            "duration_s": d,
            "page_size": PAGE,
            "inboxes": args.users,
            "items_per_inbox": args.items,
            "cpus": os.cpu_count(),
        }
    finally:
        for proc in (api_proc, bare_proc):
            proc.send_signal(signal.SIGTERM)
        for proc in (api_proc, bare_proc):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def pool_for(url: str) -> Pool:
    host, port = url.removeprefix("http://").split(":")
    return Pool(host, int(port))


async def cleanup(settings: Settings) -> None:
    redis = connect(settings)
    try:
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase (≤ 30)")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered req/s (≤ 5000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", choices=("api", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(args.serve, args.port)
        return 0
    args.duration = min(max(args.duration, 1.0), 30.0)
    args.rate = min(max(args.rate, 10.0), 5000.0)
    args.concurrency = min(max(args.concurrency, 1), 256)
    with scratch_server() as (url, folder, private):
        result = _run(args, url, folder, private)
    if args.json:
        print(orjson.dumps(result).decode())
        return 0
    _report(args, result)
    return 0


def _run(args: argparse.Namespace, url: str, folder: Path, private: bool) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = child_env(url, folder, prefix, HERALD_PARTITIONS="16", HERALD_API_KEYS=KEY,
                    HERALD_TOKEN_SECRET=SECRET)
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("HERALD_")},
                                 redis_url=url)
    import uvloop

    result = uvloop.run(measure(args, settings, env))
    if not private:
        uvloop.run(cleanup(settings))
    return result


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(f"inbox GET (API, user token): {result['inbox_get_rps']:>8.0f} req/s "
          f"at {args.concurrency} connections")
    print(f"inbox GET (bare handler):    {result['bare_get_rps']:>8.0f} req/s "
          f"-> ratio {result['ratio_inbox_to_bare']:.2f}")
    print(f"inbox GET at {args.rate:.0f} req/s offered: p50 {result['inbox_get_p50_ms']:.2f} ms, "
          f"p99 {result['inbox_get_p99_ms']:.2f} ms (bare: p50 {result['bare_get_p50_ms']:.2f}, "
          f"p99 {result['bare_get_p99_ms']:.2f})")
    print(f"publish one per request:     {result['publish_rps']:>8.0f} req/s")
    print(f"publish batches of 100:      {result['publish_batch_100_rps']:>8.0f} req/s "
          f"({result['publish_batch_notifications_per_s']:.0f} notifications/s)")
    print(f"errors: {result['errors']}")


if __name__ == "__main__":
    sys.exit(main())
