"""Benchmark of topic fan-out: one notification to a topic of N subscribers.

    .venv/bin/python scripts/bench_fanout.py [--recipients 200000] [--json]

One private server (or ``REDIS_URL``), 64 partitions, sealing off (with it on, each of
the N users would first get a data key: a cost of the first notification to a user,
not of the fan-out). Phases, each bounded by ``--phase-timeout``:

1. setup (not a figure): N users subscribe (``topic.subscribed`` appended in
   pipelined batches of 1000) and a projector applies them;
2. baseline: ordinary publishing (batches of 100, one writer) for ``--window`` seconds;
3. the fan-out: ``POST``-equivalent job creation (consumers/fanout/jobs.py), a
   ``fanout`` worker process and a projector process; meanwhile ordinary publishing
   runs again for ``--window`` seconds and a subscriber's inbox is read in a loop.

Figures: ``topic_fanout_s`` (job created → the last recipient's notification
projected: every partition's checkpoint at its log's end once the job is done),
``bytes_per_recipient_topic`` (server memory after minus before the fan-out, per
recipient: the log entry, its idempotency record and the inbox item),
``inbox_get_p99_ms_during_fanout`` (p99 of one subscriber's first page, read
through ``InboxQueries.page`` — the query the API runs — during the fan-out),
``live_ratio_during_fanout`` (ordinary publish rate during the fan-out / without);
then a broadcast to every known user (the N subscribers and the ≤ 10,000 users the
publishing phases wrote to; ``broadcast_sent``): ``broadcast_visible_s`` and
``bytes_per_recipient_broadcast`` (fanned out on write like a topic, see the README).
Progress goes to stderr; with ``--json`` stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from herald.benchproc import child_env, spawn, stop_children  # noqa: E402
from herald.consumers.fanout.jobs import BROADCAST, FanoutJobs, job_id_for  # noqa: E402
from herald.consumers.projection.applier import GROUP  # noqa: E402
from herald.consumers.projection.queries import InboxQueries  # noqa: E402
from herald.streams.connection import connect  # noqa: E402
from herald.streams.events import NotificationCreated, TopicSubscribed  # noqa: E402
from herald.streams.keys import Keys  # noqa: E402
from herald.streams.log import configure_logging  # noqa: E402
from herald.streams.producer import Producer  # noqa: E402
from herald.streams.server import start_server  # noqa: E402
from herald.streams.settings import Settings  # noqa: E402

PARTITIONS = 64
TOPIC = "bench"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def drained(redis: Any, keys: Keys, deadline: float) -> bool:
    """Every partition's projector checkpoint is at its log's last entry."""
    while time.monotonic() < deadline:
        async with redis.pipeline(transaction=False) as pipe:
            for p in range(PARTITIONS):
                pipe.xrevrange(keys.stream(p), count=1)
                pipe.get(keys.checkpoint(p, "v", GROUP))
            replies = await pipe.execute()
        behind = 0
        for p in range(PARTITIONS):
            last, ckpt = replies[2 * p], replies[2 * p + 1]
            if last and (ckpt is None or ckpt.decode() != last[0][0].decode()):
                behind += 1
        if not behind:
            return True
        await asyncio.sleep(0.05)
    return False


async def publish_for(producer: Producer, seconds: float, tag: str) -> float:
    """Ordinary notifications (batches of 100, one writer) for ``seconds``: events/s."""
    n, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        await producer.publish_many([producer.envelope(f"{tag}{(n + i) % 5000}",
                                                       NotificationCreated(title="hi"))
                                     for i in range(100)])
        n += 100
    return n / (time.monotonic() - started)


async def read_loop(queries: InboxQueries, user: str, stop: asyncio.Event) -> list[float]:
    out = []
    while not stop.is_set():
        t = time.perf_counter()
        await queries.page(user, limit=20)
        out.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.01)
    return out


async def used_memory(redis: Any) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    prefix = f"bf{uuid.uuid4().hex[:6]}"
    env = child_env(url, folder, prefix, HERALD_PARTITIONS=str(PARTITIONS), HERALD_SEAL="false",
                    HERALD_FANOUT_RATE="off")
    os.environ.update({k: v for k, v in env.items() if k.startswith("HERALD_")})
    settings = Settings.from_env().replace(redis_url=url)
    redis = connect(settings)
    keys = Keys(prefix)
    producer = Producer(redis, settings)
    await producer.start()
    n = args.recipients
    users = [f"s{i}" for i in range(n)]
    out: dict[str, Any] = {"recipients": n, "partitions": PARTITIONS}
    try:
        say(f"setup: {n} subscriptions")
        spawn("worker", env)
        t0 = time.monotonic()
        sem = asyncio.Semaphore(4)

        async def subscribe(chunk: list[str]) -> None:
            async with sem:
                await producer.publish_many([producer.envelope(u, TopicSubscribed(topic=TOPIC))
                                             for u in chunk])

        await asyncio.gather(*(subscribe(users[i:i + 1000]) for i in range(0, n, 1000)))
        ok = await drained(redis, keys, time.monotonic() + args.phase_timeout)
        out["setup_s"] = round(time.monotonic() - t0, 1)
        say(f"setup: {out['setup_s']} s (projected: {ok})")
        queries = InboxQueries(redis, settings)
        say("baseline: ordinary publishing")
        base = await publish_for(producer, args.window, "b")
        await drained(redis, keys, time.monotonic() + args.phase_timeout)
        out["live_eps_without_fanout"] = round(base)
        before = await used_memory(redis)
        jobs = FanoutJobs(redis, keys)
        spawn("fanout", env)
        say("fan-out: started")
        started = time.monotonic()
        job_id = job_id_for("", TOPIC, f"bench-{prefix}")
        await jobs.create(job_id, "", TOPIC, NotificationCreated(title="to everyone"), "d")
        stop = asyncio.Event()
        reader = asyncio.create_task(read_loop(queries, users[-1], stop))
        during = await publish_for(producer, args.window, "c")
        deadline = started + args.phase_timeout
        while time.monotonic() < deadline:
            job = await jobs.get(job_id)
            if job is not None and job.done is not None:
                break
            say(f"fan-out: {job.sent if job else 0} sent")
            await asyncio.sleep(1.0)
        done = await drained(redis, keys, deadline)
        elapsed = time.monotonic() - started
        stop.set()
        latencies = sorted(await reader)
        after = await used_memory(redis)
        last = (await queries.page(users[-1], limit=1)).items
        out["topic_fanout_s"] = round(elapsed, 2) if done and last else None
        out["fanout_sent"] = (await jobs.get(job_id)).sent  # type: ignore[union-attr]
        out["bytes_per_recipient_topic"] = round((after - before) / n)
        out["inbox_get_p99_ms_during_fanout"] = (
            round(latencies[int(len(latencies) * 0.99) - 1], 2) if latencies else None)
        out["inbox_gets_during_fanout"] = len(latencies)
        out["live_eps_during_fanout"] = round(during)
        out["live_ratio_during_fanout"] = round(during / base, 3) if base else None
        say(f"fan-out: {out['topic_fanout_s']} s")
        # The broadcast: every known user of the tenant (the N subscribers, known since
        # the topic reached them), fanned out on write the same way.
        before = await used_memory(redis)
        started = time.monotonic()
        b_id = job_id_for("", BROADCAST, f"bench-b-{prefix}")
        await jobs.create(b_id, "", BROADCAST, NotificationCreated(title="to all"), "b")
        deadline = started + args.phase_timeout
        while time.monotonic() < deadline:
            job = await jobs.get(b_id)
            if job is not None and job.done is not None:
                break
            say(f"broadcast: {job.sent if job else 0} sent")
            await asyncio.sleep(1.0)
        done = await drained(redis, keys, deadline)
        elapsed = time.monotonic() - started
        out["broadcast_visible_s"] = round(elapsed, 2) if done else None
        out["broadcast_sent"] = (await jobs.get(b_id)).sent  # type: ignore[union-attr]
        out["bytes_per_recipient_broadcast"] = round(
            (await used_memory(redis) - before) / max(1, out["broadcast_sent"]))
        say(f"broadcast: {out['broadcast_visible_s']} s")
    finally:
        stop_children()
        await redis.aclose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=200_000,
                        help="subscribers of the topic (default 200k: the issue's 1M does "
                             "not fit in ten minutes on a 2-core box; pass 1000000)")
    parser.add_argument("--window", type=float, default=5.0,
                        help="seconds of ordinary publishing measured, without and during")
    parser.add_argument("--phase-timeout", type=float, default=180.0,
                        help="seconds allowed for the setup and for the fan-out")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if args.recipients < 1:
        parser.error("--recipients must be at least 1")
    configure_logging("warning", "console")
    url = os.environ.get("REDIS_URL")
    folder = Path(tempfile.mkdtemp(prefix="herald-bench-fanout-"))
    handle = None
    if not url:
        handle = start_server(folder, die_with_parent=True)
        url = handle.url
    try:
        out = asyncio.run(run(args, url, folder))
    finally:
        if handle is not None:
            handle.stop()
        shutil.rmtree(folder, ignore_errors=True)
    out["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if args.json:
        print(orjson.dumps(out).decode())
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
