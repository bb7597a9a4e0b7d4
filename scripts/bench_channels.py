"""Channels benchmark: sends/s per provider against the local fakes with 1 and 2 worker
processes, and how soon a ``critical`` notification reaches its provider while bulk
sends wait behind a rate limit.

Everything runs on loopback: a private server (unless REDIS_URL is set), one process
serving every provider fake (scripts/provider_fakes.py: each checks its provider's
signature or token the provider's way; only verified requests are counted), one
``herald worker --roles projector`` process and 1 or 2 ``herald worker --roles
<channel>`` processes with the provider chosen by HERALD_SMS_PROVIDER,
HERALD_WECHAT_PROVIDER or HERALD_PUSH_PROVIDERS.

Throughput (``sends_per_s_<provider>_<n>w``): per provider and worker count, in a
fresh key prefix, ``--users`` recipients (phones, OpenIDs, WeCom user ids, or one
device each) are registered and projected, the workers start and share the
partitions, then ``--count`` notifications naming the channel are appended; the
figure is verified requests per second at the fake from its first to its last.

Critical (``critical_p99_ms``): ``HERALD_RATE_LIMITS=sms=10/m`` (Alibaba Cloud SMS,
two workers, HERALD_CRITICAL_RESERVE=``--reserve``); ``--bulk`` SMS notifications
(100,000) are appended and the workers file them into the retry queue behind the
limit; then ``--samples`` critical SMS-only notifications (no inbox item) are
published one at a time, spaced so that critical sends alone never use more than the
reserve, and each one's time from publish (this process's clock) to the fake's
arrival (the fake's, same machine) is measured. ``rate_limit_max_in_window`` is the
most requests the fake received in any 60 s window during that phase (less 0.25 s for
arrival jitter) and ``rate_limit_exceeded`` whether it was more than 10.

Bounded: ``--count`` ≤ 50,000, ``--bulk`` ≤ 200,000, ``--samples`` ≤ 50; each wait
gives up after ``--timeout`` s. Progress goes to stderr; ``--json`` prints one JSON
object last on stdout.

    python scripts/bench_channels.py [--count 2000] [--bulk 100000] [--samples 10]
                                     [--providers aliyun,tencent,...] [--skip-critical]
                                     [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import hashlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import uvloop

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the packages importable
    sys.path.insert(0, str(REPO))

from herald.streams import positions  # noqa: E402
from herald.streams.connection import connect, get_many  # noqa: E402
from herald.streams.events import (  # noqa: E402
    DeviceRegistered,
    NotificationCreated,
    Payload,
    ProfileChanged,
)
from herald.streams.keys import Keys  # noqa: E402
from herald.streams.log import configure_logging  # noqa: E402
from herald.streams.producer import Producer  # noqa: E402
from herald.streams.server import start_server  # noqa: E402
from herald.streams.settings import Settings  # noqa: E402

MAX_COUNT = 50_000
MAX_BULK = 200_000
MAX_SAMPLES = 50
CHUNK = 1000
SMS_LIMIT = 10  # sends per minute in the critical phase (the sms=10/m)
WINDOW_S = 60.0
JITTER_S = 0.25

# provider → (channel role, the variable that chooses it, the fake's name)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "aliyun": ("sms", "HERALD_SMS_PROVIDER", "aliyun"),
    "tencent": ("sms", "HERALD_SMS_PROVIDER", "tencent"),
    "official": ("wechat", "HERALD_WECHAT_PROVIDER", "wechat"),
    "wecom": ("wechat", "HERALD_WECHAT_PROVIDER", "wecom"),
    "fcm": ("push", "HERALD_PUSH_PROVIDERS", "fcm"),
    "apns": ("push", "HERALD_PUSH_PROVIDERS", "apns"),
}


def progress(text: str) -> None:
    print(f"bench_channels: {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the fakes' process


def run_fakes() -> None:
    """``--fakes``: serve every provider fake and a stats server on 127.0.0.1; print one
    JSON line (the workers' HERALD_* variables and the stats port); run until killed."""
    from aiohttp import web

    from herald.provider_fakes import Fake, provider_env, serve_fakes

    offset = time.time() - time.monotonic()  # Received.at is monotonic: as wall time

    def key_of(fake: Fake, got: Any) -> str:
        if got.query.get("PhoneNumbers"):  # Alibaba Cloud: the number, without "+"
            return "+" + got.query["PhoneNumbers"]
        return ""

    async def serve() -> None:
        async with serve_fakes() as fakes:
            by_name = {name: getattr(fakes, name) for name in
                       ("aliyun", "tencent", "wechat", "wecom", "fcm", "apns")}

            async def stats(request: web.Request) -> web.Response:
                out = {}
                for name, fake in by_name.items():
                    ok = [r.at for r in fake.received if r.verified]
                    out[name] = {"received": len(fake.received), "verified": len(ok),
                                 "first": ok[0] + offset if ok else None,
                                 "last": ok[-1] + offset if ok else None,
                                 "tokens": fake.token_requests}
                return web.json_response(out)

            async def arrivals(request: web.Request) -> web.Response:
                fake = by_name[request.match_info["name"]]
                return web.json_response([[r.at + offset, key_of(fake, r)]
                                          for r in fake.received if r.verified])

            async def reset(request: web.Request) -> web.Response:
                for fake in by_name.values():
                    fake.received.clear()
                return web.json_response({})

            app = web.Application()
            app.router.add_get("/stats", stats)
            app.router.add_get("/arrivals/{name}", arrivals)
            app.router.add_post("/reset", reset)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            env = provider_env(fakes)
            print(orjson.dumps({"env": env, "stats": port}).decode(), flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

    uvloop.run(serve())


class FakesClient:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    async def _call(self, method: str, path: str) -> Any:
        import aiohttp

        async with aiohttp.ClientSession() as session, \
                session.request(method, self.base + path) as response:
            return await response.json()

    async def stats(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/stats"))

    async def arrivals(self, name: str) -> list[tuple[float, str]]:
        return [(float(at), str(key)) for at, key in await self._call("GET",
                                                                       f"/arrivals/{name}")]

    async def reset(self) -> None:
        await self._call("POST", "/reset")


# -------------------------------------------------------------------- phases


async def _spawn(settings: Settings, role: str, env_extra: dict[str, str]
                 ) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update({"REDIS_URL": settings.redis_url or "", "HERALD_PREFIX": settings.prefix,
                "HERALD_PARTITIONS": str(settings.partitions), "HERALD_LOG_FORMAT": "json",
                "HERALD_LOG_LEVEL": "error", "HERALD_LEASE_TTL": "2s",
                "PYTHONPATH": str(REPO)})
    env.update(env_extra)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "worker", "--roles", role, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=None)


async def _stop(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _until(check: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


def _recipient(provider: str, i: int) -> Payload:
    if provider in ("aliyun", "tencent"):
        return ProfileChanged(phone=f"+86138{i:08d}")
    if provider == "official":
        return ProfileChanged(wechat_openid=f"oBench{i:010d}")
    if provider == "wecom":
        return ProfileChanged(wecom_userid=f"bench{i}")
    platform = provider
    token = hashlib.sha256(f"{provider}{i}".encode()).hexdigest()  # 64 hex, like APNs'
    did = hashlib.blake2b(f"{platform}\0{token}".encode(), digest_size=8).hexdigest()
    return DeviceRegistered(device_id=did, platform=platform, token=token)


class Phase:
    """A fresh prefix: recipients registered and projected, workers sharing partitions."""

    def __init__(self, url: str, partitions: int, env: dict[str, str]) -> None:
        self.settings = Settings.from_env({}, redis_url=url,
                                          prefix=f"bch{uuid.uuid4().hex[:8]}",
                                          partitions=partitions, log_level="warning")
        self.keys = Keys(self.settings.prefix)
        self.redis = connect(self.settings)
        self.producer = Producer(self.redis, self.settings)
        self.env = env
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Phase:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await _stop(self.procs)
        await self.redis.aclose()

    async def publish(self, items: Sequence[tuple[str, Payload]]) -> None:
        for i in range(0, len(items), CHUNK):
            await self.producer.publish_many([self.producer.envelope(user, payload)
                                              for user, payload in items[i : i + CHUNK]])

    async def projected(self, timeout: float) -> None:  # noqa: ASYNC109
        """Start the projector; wait until it applied everything appended so far."""
        if not self.procs:
            self.procs.append(await _spawn(self.settings, "projector", self.env))
        ends = {}
        for p in range(self.settings.partitions):
            last = await self.redis.xrevrange(self.keys.stream(p), count=1)
            if last:
                ends[p] = positions.parse(last[0][0].decode())

        async def done() -> bool:
            for p, end in ends.items():
                ckpt = await self.redis.get(self.keys.checkpoint(p))
                if ckpt is None or positions.parse(ckpt.decode()) < end:
                    return False
            return True

        await _until(done, timeout, "the projector")

    async def workers(self, role: str, count: int, timeout: float) -> None:  # noqa: ASYNC109
        for _ in range(count):
            self.procs.append(await _spawn(self.settings, role, self.env))
        lease_keys = [self.keys.lease(role, p) for p in range(self.settings.partitions)]

        async def shared() -> bool:  # evenly: no hand-over in the middle of the run
            owners = await get_many(self.redis, lease_keys)
            counts = [owners.count(o) for o in set(owners)]
            return None not in owners and len(counts) == count and \
                max(counts) - min(counts) <= 1

        await _until(shared, timeout, "the workers to share the partitions")


async def throughput(url: str, fakes: FakesClient, env: dict[str, str], provider: str,
                     workers: int, args: argparse.Namespace) -> dict[str, Any]:
    role, variable, fake = PROVIDERS[provider]
    await fakes.reset()
    names = [f"u{i}" for i in range(args.users)]
    async with Phase(url, args.partitions, {**env, variable: provider}) as phase:
        await phase.publish([(user, _recipient(provider, i)) for i, user in enumerate(names)])
        await phase.projected(args.timeout)
        await phase.workers(role, workers, args.timeout)
        started = time.perf_counter()
        await phase.publish([(names[n % args.users], NotificationCreated(
            title=f"订单 {n} 已发货", body="Your order is on its way", channels=(role,),
            inbox=False, data={"n": n})) for n in range(args.count)])
        publish_s = time.perf_counter() - started

        async def sent() -> bool:
            return int((await fakes.stats())[fake]["verified"]) >= args.count

        await _until(sent, args.timeout, f"{args.count} {provider} sends")
        stats = (await fakes.stats())[fake]
    span = max(float(stats["last"]) - float(stats["first"]), 1e-6)
    return {"provider": provider, "workers": workers, "count": args.count,
            "sends_per_s": round((args.count - 1) / span, 1), "seconds": round(span, 3),
            "requests": stats["received"], "verified": stats["verified"],
            "token_requests": stats["tokens"], "publish_s": round(publish_s, 3)}


def max_in_window(times: list[float], window: float) -> int:
    """The most of ``times`` (sorted) inside any half-open window of ``window`` s."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + window) - i)
    return best


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


async def critical(url: str, fakes: FakesClient, env: dict[str, str],
                   args: argparse.Namespace) -> dict[str, Any]:
    await fakes.reset()
    bulk_users = [f"b{i}" for i in range(args.users)]
    crit_users = [f"c{i}" for i in range(args.samples)]
    limits = {**env, "HERALD_SMS_PROVIDER": "aliyun",
              "HERALD_RATE_LIMITS": f"sms={SMS_LIMIT}/m",
              "HERALD_CRITICAL_RESERVE": f"{args.reserve:g}%"}
    reserved = max(1, int(SMS_LIMIT * args.reserve / 100))
    spacing = WINDOW_S / reserved + 0.5  # critical sends alone never exceed the reserve
    phones = {user: f"+86139{i:08d}" for i, user in enumerate(crit_users)}
    async with Phase(url, args.partitions, limits) as phase:
        await phase.publish([(u, ProfileChanged(phone=f"+86138{i:08d}"))
                             for i, u in enumerate(bulk_users)] +
                            [(u, ProfileChanged(phone=phones[u])) for u in crit_users])
        await phase.projected(args.timeout)
        await phase.workers("sms", 2, args.timeout)
        progress(f"critical: appending {args.bulk} bulk SMS")
        started = time.monotonic()
        await phase.publish([(bulk_users[n % args.users], NotificationCreated(
            title=f"促销 {n}", channels=("sms",), inbox=False)) for n in range(args.bulk)])
        queues = [phase.keys.retry_queue("sms", p) for p in range(args.partitions)]

        async def queued() -> bool:
            async with phase.redis.pipeline(transaction=False) as pipe:
                for key in queues:
                    pipe.zcard(key)
                waiting = sum(await pipe.execute())
            sent = int((await fakes.stats())["aliyun"]["verified"])
            return waiting + sent >= args.bulk

        await _until(queued, args.timeout, "the bulk sends to be queued")
        queued_s = time.monotonic() - started
        progress(f"critical: {args.bulk} bulk sends queued after {queued_s:.1f} s; "
                 f"{args.samples} critical sends, one every {spacing:.1f} s")
        latencies: list[float] = []
        for user in crit_users:
            sent_at = time.time()
            await phase.producer.publish(phase.producer.envelope(user, NotificationCreated(
                title="登录验证码 314159", channels=("sms",), inbox=False,
                priority="critical", category="otp")))
            arrived: list[float] = []

            async def reached(phone: str = phones[user], found: list[float] = arrived
                              ) -> bool:
                hits = [at for at, key in await fakes.arrivals("aliyun") if key == phone]
                found[:] = hits
                return bool(hits)

            await _until(reached, args.timeout, "a critical send")
            latencies.append((arrived[0] - sent_at) * 1000)
            progress(f"critical: {latencies[-1]:.0f} ms")
            await asyncio.sleep(max(0.0, spacing - (time.time() - sent_at)))
        times = sorted(at for at, _ in await fakes.arrivals("aliyun"))
        waiting = 0
        async with phase.redis.pipeline(transaction=False) as pipe:
            for key in queues:
                pipe.zcard(key)
            waiting = sum(await pipe.execute())
    most = max_in_window(times, WINDOW_S - JITTER_S)
    return {"critical_p99_ms": round(p99(latencies), 1),
            "critical_p50_ms": round(sorted(latencies)[len(latencies) // 2], 1),
            "critical_max_ms": round(max(latencies), 1), "critical_samples": len(latencies),
            "critical_latencies_ms": [round(x, 1) for x in latencies],
            "bulk_waiting": waiting, "bulk_queued_s": round(queued_s, 1),
            "sms_requests": len(times), "rate_limit": f"sms={SMS_LIMIT}/m",
            "critical_reserve_pct": args.reserve,
            "rate_limit_max_in_window": most, "rate_limit_exceeded": most > SMS_LIMIT}


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--fakes", stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    out: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        hello = orjson.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        fakes = FakesClient(int(hello["stats"]))
        env = dict(hello["env"])
        for provider in args.providers:
            for workers in (1, 2):
                result = await throughput(url, fakes, env, provider, workers, args)
                out[f"sends_per_s_{provider}_{workers}w"] = result["sends_per_s"]
                out[f"{provider}_{workers}w"] = result
                progress(f"{provider}, {workers} worker(s): {result['sends_per_s']:.0f} "
                         f"sends/s ({result['count']} in {result['seconds']} s, "
                         f"{result['token_requests']} token requests so far)")
        if not args.skip_critical:
            result = await critical(url, fakes, env, args)
            out.update(result)
            progress(f"critical behind {args.bulk} bulk at sms={SMS_LIMIT}/m: p99 "
                     f"{result['critical_p99_ms']} ms over {result['critical_samples']}; "
                     f"most in a minute {result['rate_limit_max_in_window']} "
                     f"(exceeded: {result['rate_limit_exceeded']})")
    finally:
        proc.kill()
        await proc.wait()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=2000, help="sends per throughput phase")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--providers", default=",".join(PROVIDERS),
                        help="comma-separated, of " + ", ".join(PROVIDERS))
    parser.add_argument("--bulk", type=int, default=100_000,
                        help="bulk SMS waiting behind the limit in the critical phase")
    parser.add_argument("--samples", type=int, default=10, help="critical sends measured")
    parser.add_argument("--reserve", type=float, default=50.0,
                        help="HERALD_CRITICAL_RESERVE in %% for the critical phase")
    parser.add_argument("--skip-critical", action="store_true")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per wait")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if args.fakes:
        run_fakes()
        return 0
    args.providers = [p for p in args.providers.split(",") if p]
    unknown = [p for p in args.providers if p not in PROVIDERS]
    if unknown:
        parser.error(f"unknown provider {unknown[0]!r}; known: {', '.join(PROVIDERS)}")
    if not 2 <= args.count <= MAX_COUNT or not 1 <= args.users <= args.count:
        parser.error(f"--count must be 2..{MAX_COUNT} and --users 1..count")
    if not 1 <= args.bulk <= MAX_BULK or not 1 <= args.samples <= MAX_SAMPLES:
        parser.error(f"--bulk must be 1..{MAX_BULK} and --samples 1..{MAX_SAMPLES}")
    if not 10 <= args.reserve <= 90:
        parser.error("--reserve must be 10..90 (%)")
    configure_logging("warning", "console")
    with contextlib.ExitStack() as stack:
        url = os.environ.get("REDIS_URL") or os.environ.get("HERALD_BENCH_REDIS_URL")
        if not url:
            handle = start_server(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            stack.callback(handle.stop)
            url = handle.url
        out = uvloop.run(run(args, url))
    if args.json:
        print(orjson.dumps(out).decode())
    else:
        for key, value in out.items():
            if not isinstance(value, dict | list):
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
