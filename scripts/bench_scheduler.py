"""Benchmark the scheduler's timer accuracy: fire-time error of reminders due over a window.

Publishes ``--reminders`` scheduled notifications (10,000 users, every tenth with a
cancel key) due evenly over ``--spread`` seconds starting after a lead time long enough
to publish and project them, runs the projector and one scheduler in this process, and
measures for every reminder the error = position time of its ``notification.created``
(the XADD's millisecond) minus its ``deliver_at``. Reports p50/p90/p99/max, how many
fired, duplicates (must be 0) and whether projection finished before the first due time.

Bounded: at most 1,000,000 reminders and 600 s of spread; the run gives up
``DRAIN_S`` after the last due time. Starts a private server unless ``REDIS_URL`` is set
(then works in a fresh prefix and deletes its keys).

    python scripts/bench_scheduler.py [--reminders 100000] [--spread 60] [--json]

``measure_fire_error(url, reminders, spread_s)`` is the entry point for other benchmarks
(scripts/bench_delivery.py); it works from inside or outside an event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from herald.benchproc import machine
from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.projector import projector_factory
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.schedule.scheduler import POLL_INTERVAL_S, Scheduler
from herald.streams import codec
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated, NotificationScheduled
from herald.streams.keys import Keys
from herald.streams.log import configure_logging
from herald.streams.producer import Producer, now_ms
from herald.streams.server import scratch_server
from herald.streams.settings import Settings

USERS = 10_000
BATCH = 1000
DRAIN_S = 30.0  # after the last due time, stop waiting for stragglers
READ_CHUNK = 5000


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1)))]


async def _publish(producer: Producer, reminders: int, t0: int, spread_ms: int
                   ) -> dict[str, int]:
    due: dict[str, int] = {}
    for start in range(0, reminders, BATCH):
        envs = []
        for i in range(start, min(reminders, start + BATCH)):
            at = t0 + (i * spread_ms) // max(1, reminders - 1)
            env = producer.envelope(f"user-{i % USERS}", NotificationScheduled(
                title=f"reminder {i}", deliver_at=at,
                cancel_key=f"order-{i}" if i % 10 == 0 else None))
            due[env.id] = at
            envs.append(env)
        await producer.publish_many(envs)
    return due


async def _projected(redis: Any, settings: Settings, queries: InboxQueries, within_s: float
                     ) -> None:
    """Until every partition's log is projected (bounded by ``within_s``)."""
    deadline = time.monotonic() + within_s
    keys = Keys(settings.prefix)
    for p in range(settings.partitions):
        last = await redis.xrevrange(keys.stream(p), count=1)
        if last:
            left = max(0.0, deadline - time.monotonic())
            if not await queries.wait_for(p, last[0][0].decode(), left):
                raise RuntimeError(f"partition {p} not projected within {within_s:g}s")


async def _errors(redis: Any, settings: Settings, due: dict[str, int], since: int
                  ) -> tuple[list[int], int]:
    """Fire errors (ms) of the reminders' created events, and the number of duplicates."""
    keys = Keys(settings.prefix)
    seen: set[str] = set()
    errors: list[int] = []
    duplicates = 0
    for p in range(settings.partitions):
        start = f"{since}-0"
        while True:
            rows = await redis.xrange(keys.stream(p), start, "+", count=READ_CHUNK)
            for position, fields in rows:
                env = codec.decode(fields[ENTRY_FIELD])
                nid = getattr(env.payload, "notification_id", None)
                if isinstance(env.payload, NotificationCreated) and nid in due:
                    if nid in seen:
                        duplicates += 1
                        continue
                    seen.add(nid)
                    errors.append(int(position.split(b"-")[0]) - due[nid])
            if len(rows) < READ_CHUNK:
                break
            start = "(" + rows[-1][0].decode()
    errors.sort()
    return errors, duplicates


async def measure_fire_error_async(
    url: str, reminders: int, spread_s: float, *, partitions: int = 16,
    lead_s: float | None = None,
) -> dict[str, Any]:
    """See the module docstring; raises ValueError for out-of-bounds arguments."""
    if not 1 <= reminders <= 1_000_000 or not 0 < spread_s <= 600:
        raise ValueError("reminders must be 1..1000000 and spread_s in (0, 600]")
    settings = Settings.from_env({}, redis_url=url, prefix=f"bsched{uuid.uuid4().hex[:8]}",
                                 partitions=partitions, log_level="warning")
    redis = connect(settings)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        producer = Producer(redis, settings)
        await producer.start()
        queries = InboxQueries(redis, settings)
        lead = lead_s if lead_s is not None else 3.0 + reminders / 10_000
        t0 = now_ms() + int(lead * 1000)
        tasks.append(asyncio.create_task(
            GroupRuntime(settings, redis, projector_factory, block_ms=100).run(stop)))
        started = time.perf_counter()
        due = await _publish(producer, reminders, t0, int(spread_s * 1000))
        publish_s = time.perf_counter() - started
        await _projected(redis, settings, queries, lead + spread_s)
        projected_margin_ms = t0 - now_ms()
        scheduler = Scheduler(settings, redis, consumer="bench")
        tasks.append(asyncio.create_task(scheduler.run(stop)))
        deadline = time.monotonic() + lead + spread_s + DRAIN_S
        while time.monotonic() < deadline:
            if scheduler.counts["fired"] >= reminders:
                break
            await asyncio.sleep(0.25)
        stop.set()
        await asyncio.gather(*tasks)
        errors, duplicates = await _errors(redis, settings, due, t0 - 1000)
        return {
            "reminders": reminders, "spread_s": spread_s, "partitions": partitions,
            "poll_interval_ms": POLL_INTERVAL_S * 1000, "fired": len(errors),
            "missing": reminders - len(errors), "duplicates": duplicates,
            "fire_error_p50_ms": percentile(errors, 0.50),
            "fire_error_p90_ms": percentile(errors, 0.90),
            "fire_error_p99_ms": percentile(errors, 0.99),
            "fire_error_max_ms": errors[-1] if errors else 0,
            "fire_error_min_ms": errors[0] if errors else 0,
            "publish_s": round(publish_s, 2),
            "projected_before_first_due_ms": projected_margin_ms,
        }
    finally:
        stop.set()
        for task in tasks:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()


def measure_fire_error(url: str, reminders: int, spread_s: float, **kw: Any) -> dict[str, Any]:
    """Synchronous entry point; runs in a worker thread when a loop is already running."""
    coro = measure_fire_error_async(url, reminders, spread_s, **kw)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds the dues span")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    configure_logging("warning", "console")
    if not 1 <= args.reminders <= 1_000_000 or not 0 < args.spread <= 600:
        parser.error("--reminders must be 1..1000000 and --spread in (0, 600]")
    with scratch_server() as (url, _folder, _private):
        results = measure_fire_error(url, args.reminders, args.spread,
                                     partitions=args.partitions)
    results["machine"] = machine()
    if args.json:
        sys.stdout.write(orjson.dumps(results).decode() + "\n")
        return 0
    print(f"{results['reminders']:,} reminders due over {results['spread_s']:g} s, "
          f"{results['partitions']} partitions, poll {results['poll_interval_ms']:g} ms")
    print(f"fired {results['fired']:,}, missing {results['missing']}, "
          f"duplicates {results['duplicates']}")
    for q in ("p50", "p90", "p99", "max"):
        print(f"fire error {q:4s} {results[f'fire_error_{q}_ms']:>7} ms")
    print(f"target: p99 < 1000 ms; projection ready {results['projected_before_first_due_ms']}"
          " ms before the first due time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
