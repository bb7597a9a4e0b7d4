"""Delivery benchmark: webhook deliveries/s with 1 and 2 worker processes, plus the
scheduler's fire-time error (scripts/bench_scheduler.py).

Everything runs on loopback: a private server (unless REDIS_URL is set), a minimal
HTTP receiver process (keep-alive, answers 200, counts distinct ``webhook-id``s),
one ``herald worker --roles projector`` process and 1 or 2 ``herald worker --roles
webhook`` processes. Per phase, in a fresh key prefix: profiles are appended and
projected, the workers start and share the partitions, then ``--count``
notifications naming the webhook channel are appended in batches. ``eps`` is the
rate at which the rest arrive once this script has stopped appending (its own CPU
is not the workers'; when fewer than a tenth are left by then, the overall rate),
``eps_overall`` counts from the first delivery to the last. Every
delivery is signed and recorded as it is in production (DeliveryAttempted and
DeliverySucceeded appended, and projected into the status by the projector).

Bounded: ``--count`` at most 200,000; each phase gives up after ``--timeout`` s.

    python scripts/bench_delivery.py [--count 20000] [--reminders 100000 --spread 60]
                                     [--skip-scheduler] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import uvloop

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the packages importable
    sys.path.insert(0, str(REPO))

from herald.streams import positions  # noqa: E402
from herald.streams.connection import connect, get_many  # noqa: E402
from herald.streams.events import NotificationCreated, ProfileChanged  # noqa: E402
from herald.streams.keys import Keys  # noqa: E402
from herald.streams.log import configure_logging  # noqa: E402
from herald.streams.producer import Producer  # noqa: E402
from herald.streams.server import start_server  # noqa: E402
from herald.streams.settings import Settings  # noqa: E402

SECRET = "whsec_aGVyYWxkLWJlbmNoLXNlY3JldC0wMTIzNDU2Nzg5"
MAX_COUNT = 200_000
CHUNK = 1000
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


# ------------------------------------------------------------------ receiver


def _header(head: bytes, name: bytes) -> bytes | None:
    at = head.find(b"\r\n" + name)
    if at < 0:
        return None
    start = at + 2 + len(name)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class _Receiver(asyncio.Protocol):
    """Just enough HTTP/1.1: requests with Content-Length, keep-alive, 200 to each."""

    seen: set[bytes] = set()
    first = 0.0
    last = 0.0
    requests = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = int(_header(head, b"content-length:") or 0)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            if head.startswith(b"get /stats"):
                body = orjson.dumps({"distinct": len(_Receiver.seen), "requests":
                                     _Receiver.requests, "first": _Receiver.first,
                                     "last": _Receiver.last})
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                     % len(body) + body)
                continue
            now = time.time()
            _Receiver.requests += 1
            if not _Receiver.first:
                _Receiver.first = now
            _Receiver.last = now
            msg_id = _header(head, b"webhook-id:")
            if msg_id is not None:
                _Receiver.seen.add(msg_id)
            self.transport.write(OK_RESPONSE)


def run_receiver() -> None:
    """``--receiver``: serve on a free port of 127.0.0.1, print it, run until killed."""
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Receiver, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    uvloop.run(serve())


async def receiver_stats(port: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        body = await reader.readexactly(int(_header(head, b"content-length:") or 0))
        return dict(orjson.loads(body))
    finally:
        writer.close()


# -------------------------------------------------------------------- phases


async def _spawn(settings: Settings, role: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update({"REDIS_URL": settings.redis_url or "", "HERALD_PREFIX": settings.prefix,
                "HERALD_PARTITIONS": str(settings.partitions), "HERALD_LOG_FORMAT": "json",
                "HERALD_LOG_LEVEL": "warning", "HERALD_LEASE_TTL": "2s",
                # the receiver listens on 127.0.0.1, which the SSRF guard refuses unless allowed
                "HERALD_WEBHOOK_ALLOW_CIDRS": "127.0.0.1/32",
                "PYTHONPATH": str(REPO)})
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


async def phase(url: str, port: int, workers: int, count: int, users: int, partitions: int,
                timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """One measurement in a fresh prefix; returns its figures."""
    settings = Settings.from_env({}, redis_url=url, prefix=f"bdel{uuid.uuid4().hex[:8]}",
                                 partitions=partitions, log_level="warning")
    keys = Keys(settings.prefix)
    redis = connect(settings)
    procs: list[asyncio.subprocess.Process] = []
    try:
        producer = Producer(redis, settings)
        await producer.start()
        hook = f"http://127.0.0.1:{port}/hook"
        names = [f"bench{i}" for i in range(users)]
        for i in range(0, users, CHUNK):
            await producer.publish_many([
                producer.envelope(u, ProfileChanged(webhook_url=hook, webhook_secret=SECRET))
                for u in names[i : i + CHUNK]])
        procs.append(await _spawn(settings, "projector"))
        ends = {}
        for p in range(partitions):
            last = await redis.xrevrange(keys.stream(p), count=1)
            if last:
                ends[p] = positions.parse(last[0][0].decode())

        async def projected() -> bool:
            for p, end in ends.items():
                ckpt = await redis.get(keys.checkpoint(p))
                if ckpt is None or positions.parse(ckpt.decode()) < end:
                    return False
            return True

        await _until(projected, 60, "the projector")
        for _ in range(workers):
            procs.append(await _spawn(settings, "webhook"))
        lease_keys = [keys.lease("webhook", p) for p in range(partitions)]

        async def shared() -> bool:  # evenly: no hand-over in the middle of the run
            owners = await get_many(redis, lease_keys)
            counts = [owners.count(o) for o in set(owners)]
            return None not in owners and len(counts) == workers and \
                max(counts) - min(counts) <= 1

        await _until(shared, 60, "the workers to share the partitions")
        started = time.perf_counter()
        for i in range(0, count, CHUNK):
            await producer.publish_many([
                producer.envelope(names[(i + j) % users],
                                  NotificationCreated(title=f"bench {i + j}",
                                                      channels=("webhook",),
                                                      data={"n": i + j}))
                for j in range(min(CHUNK, count - i))])
        publish_s = time.perf_counter() - started
        at_publish_end = await receiver_stats(port)
        drain_from = time.time()

        async def delivered() -> bool:
            return int((await receiver_stats(port))["distinct"]) >= count

        await _until(delivered, timeout, f"{count} deliveries")
        stats = await receiver_stats(port)
        span = max(stats["last"] - stats["first"], 1e-6)
        overall = (count - 1) / span
        left = count - int(at_publish_end["distinct"])
        drain = left / max(stats["last"] - drain_from, 1e-6) if left >= count // 10 else overall
        return {"workers": workers, "count": count, "eps": round(drain, 1),
                "eps_overall": round(overall, 1), "seconds": round(span, 3),
                "drained_after_publish": left, "requests": stats["requests"],
                "distinct": stats["distinct"], "publish_s": round(publish_s, 3)}
    finally:
        await _stop(procs)
        await redis.aclose()


def fire_error(url: str, reminders: int, spread: float) -> dict[str, Any]:
    try:
        from herald.bench_scheduler import measure_fire_error
    except ImportError:
        print("bench_delivery: scripts/bench_scheduler.py (measure_fire_error) is missing",
              file=sys.stderr)
        return {"fire_error_p50_ms": None, "fire_error_p99_ms": None}
    result = measure_fire_error(url, reminders, spread)
    return {"fire_error_p50_ms": result.get("fire_error_p50_ms"),
            "fire_error_p99_ms": result.get("fire_error_p99_ms"), "scheduler": result}


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workers in (1, 2):
        receiver = await asyncio.create_subprocess_exec(  # a fresh one per phase
            sys.executable, __file__, "--receiver", stdout=asyncio.subprocess.PIPE)
        try:
            assert receiver.stdout is not None
            port = int((await asyncio.wait_for(receiver.stdout.readline(), 30)).strip())
            result = await phase(url, port, workers, args.count, args.users, args.partitions,
                                 args.timeout)
        finally:
            receiver.kill()
            await receiver.wait()
        out[f"webhook_{workers}_eps"] = result["eps"]
        out[f"webhook_{workers}"] = result
        if not args.json:
            print(f"webhook, {workers} worker(s): {result['eps']:.0f} deliveries/s "
                  f"({result['eps_overall']:.0f}/s overall: {result['count']} in "
                  f"{result['seconds']} s, {result['requests']} requests, "
                  f"{result['distinct']} distinct)", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=20_000, help="deliveries per phase")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds the dues span")
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.receiver:
        run_receiver()
        return 0
    if not 1 <= args.count <= MAX_COUNT or not 1 <= args.users <= args.count:
        parser.error(f"--count must be 1..{MAX_COUNT} and --users 1..count")
    configure_logging("warning", "console")  # stdout carries only the results
    with contextlib.ExitStack() as stack:
        url = os.environ.get("REDIS_URL") or os.environ.get("HERALD_BENCH_REDIS_URL")
        if not url:
            handle = start_server(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            stack.callback(handle.stop)
            url = handle.url
        out = uvloop.run(run(args, url))
        if args.skip_scheduler:
            out.update({"fire_error_p50_ms": None, "fire_error_p99_ms": None})
        else:
            out.update(fire_error(url, args.reminders, args.spread))
            if not args.json:
                print(f"scheduler fire-time error: p50 {out['fire_error_p50_ms']} ms, "
                      f"p99 {out['fire_error_p99_ms']} ms")
    if args.json:
        print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
