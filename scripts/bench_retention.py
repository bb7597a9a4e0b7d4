"""Retention benchmark: Redis memory stays flat under sustained load, and what it costs.

    .venv/bin/python scripts/bench_retention.py [--events 2000000] [--json]

Bounded and loopback only: a private server (unless ``REDIS_URL`` is set), a local
webhook receiver (scripts/bench_delivery.py ``--receiver``), and ``herald worker``
processes. Phases, each in a fresh key prefix:

1. **Live ratio** (``live_eps_retention_on`` / ``_off``, ``ratio_live_retention``):
   ``--live-events`` published in batches of 100 as fast as possible while one worker
   projects (roles ``projector``, and ``retention`` snapshotting every 2,000 entries per
   partition in the "on" runs); events projected per second from the first publish.
   Alternating pairs, medians.
2. **Sustained** (``bytes_per_retained_event``, ``memory_growth_ratio``,
   ``retained_window_max``): ``--events`` published at ``--rate`` through one worker
   running ``projector,retention,webhook`` (every ``--webhook-every``-th notification is
   also delivered to the receiver), ``used_memory`` and the entries Redis still holds
   sampled every 2 s. Statuses and idempotency records use short windows (1 min) so
   they reach their steady state within the run, as they do in a day at the defaults.
   The growth ratio compares the peak of the last third of the samples with the peak of
   the first third, counted from when the window filled (3 snapshot intervals and every
   inbox at its cap). Then: ``replay_from_snapshot_s``, ``replay_from_start_s`` and
   ``replay_equal`` (``--verify`` from the snapshots and from the start, both).
3. **Snapshot and archive** (``snapshot_s``, ``snapshot_incremental_s``,
   ``archive_eps``): ``--snapshot-users`` users with 4 notifications each, projected;
   then one snapshot of every partition (the first folds the whole log), the archive
   of everything below it; then 1 more notification per user and the incremental
   snapshot (the previous one loaded, the new entries folded).

``--json`` prints one object last. Targets (issue): memory_growth_ratio ≤ 1.2,
archive_eps ≥ 100,000, ratio_live_retention ≥ 0.9.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from herald.bench_delivery import receiver_stats
from herald.benchproc import machine
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.consumers.retention.role import Retention
from herald.streams import positions
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated, ProfileChanged
from herald.streams.keys import Keys
from herald.streams.log import configure_logging
from herald.streams.producer import Producer
from herald.streams.server import scratch_server
from herald.streams.settings import Settings, parse_snapshot_every

REPO = Path(__file__).resolve().parents[1]
SAMPLE_S = 2.0
WEBHOOK_SECRET = "whsec_aGVyYWxkLWJlbmNoLXNlY3JldC0wMTIzNDU2Nzg5"
LIVE_SNAPSHOT_EVERY = 2000


def _settings(url: str, folder: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"redis_url": url, "prefix": f"bret{uuid.uuid4().hex[:8]}",
                              "log_level": "warning", "data_dir": folder}
    values.update(extra)
    return Settings.from_env({}, **values)


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    every = settings.snapshot_every
    env.update({"REDIS_URL": settings.redis_url or "", "HERALD_PREFIX": settings.prefix,
                "HERALD_PARTITIONS": str(settings.partitions), "HERALD_LOG_FORMAT": "json",
                "HERALD_LOG_LEVEL": "warning", "HERALD_LEASE_TTL": "2s",
                # the receiver listens on 127.0.0.1, which the SSRF guard refuses unless allowed
                "HERALD_WEBHOOK_ALLOW_CIDRS": "127.0.0.1/32",
                "HERALD_DATA_DIR": str(settings.data_dir),
                "HERALD_INBOX_MAX": str(settings.inbox_max),
                "HERALD_SNAPSHOT_EVERY": f"{every.events}" if every.events else "1h",
                "HERALD_STATUS_TTL": f"{settings.status_ttl_s}s",
                "HERALD_DEDUPE_WINDOW": f"{settings.dedupe_window_s}s",
                "PYTHONPATH": str(REPO)})
    env.update(extra)
    return env


async def _worker(settings: Settings, roles: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "worker", "--roles", roles, env=_env(settings),
        stdout=asyncio.subprocess.DEVNULL, stderr=None)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _projected(redis: Any, settings: Settings, timeout: float) -> None:  # noqa: ASYNC109
    """Until every partition's checkpoint is at its stream's last entry."""
    keys = Keys(settings.prefix)
    deadline = time.monotonic() + timeout
    while True:
        behind = 0
        for p in range(settings.partitions):
            last = await redis.xrevrange(keys.stream(p), count=1)
            ckpt = await redis.get(keys.checkpoint(p))
            if last and (ckpt is None or positions.parse(ckpt.decode())
                         < positions.parse(last[0][0].decode())):
                behind += 1
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{behind} partitions not projected within {timeout:g}s")
        await asyncio.sleep(0.05)


def _progress(done: int, total: int, what: str, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-6)
    print(f"\r{what}: {done:,}/{total:,} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- phase 1
async def live_phase(url: str, folder: Path, args: argparse.Namespace, on: bool) -> float:
    settings = _settings(url, folder / f"live-{uuid.uuid4().hex[:6]}", partitions=16,
                         snapshot_every=parse_snapshot_every(str(LIVE_SNAPSHOT_EVERY)))
    redis = connect(settings)
    producer = Producer(redis, settings)
    await producer.start()
    worker = await _worker(settings, "projector,retention" if on else "projector")
    try:
        await asyncio.sleep(1.5)  # the worker takes its leases
        users = [f"live{i}" for i in range(args.users)]
        started = time.monotonic()
        for i in range(0, args.live_events, 100):
            await producer.publish_many([
                producer.envelope(users[(i + j) % len(users)],
                                  NotificationCreated(title=f"live {i + j}", data={"n": i + j}))
                for j in range(min(100, args.live_events - i))])
        await _projected(redis, settings, 300)
        return args.live_events / (time.monotonic() - started)
    finally:
        await _stop(worker)
        await redis.aclose()


# --------------------------------------------------------------------- phase 2
async def sustained_phase(url: str, folder: Path, args: argparse.Namespace,
                          port: int) -> dict[str, Any]:
    settings = _settings(url, folder / "sustained", partitions=args.partitions,
                         inbox_max=args.inbox_max,
                         snapshot_every=parse_snapshot_every(str(args.snapshot_every)),
                         status_ttl_s=60.0, dedupe_window_s=60.0)
    keys = Keys(settings.prefix)
    redis = connect(settings)
    producer = Producer(redis, settings)
    await producer.start()
    worker = await _worker(settings, "projector,retention,webhook")
    samples: list[tuple[int, int, int]] = []  # (published, used_memory, retained entries)
    published = 0
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            info = await redis.info("memory")
            async with redis.pipeline(transaction=False) as pipe:
                for p in range(settings.partitions):
                    pipe.xlen(keys.stream(p))
                retained = sum(await pipe.execute())
            samples.append((published, int(info["used_memory"]), int(retained)))
            await asyncio.sleep(SAMPLE_S)

    users = [f"u{i}" for i in range(args.users)]
    for i in range(0, len(users), 500):  # every user's webhook endpoint (signed deliveries)
        await producer.publish_many([producer.envelope(u, ProfileChanged(
            webhook_url=f"http://127.0.0.1:{port}/hook", webhook_secret=WEBHOOK_SECRET))
            for u in users[i:i + 500]])
    sampler = asyncio.create_task(sample())
    delivered = 0
    try:
        await asyncio.sleep(1.5)
        started = time.monotonic()
        batch = 200
        for i in range(0, args.events, batch):
            envs = []
            for j in range(min(batch, args.events - i)):
                n = i + j
                push = n % args.webhook_every == 0
                delivered += push
                envs.append(producer.envelope(users[n % len(users)], NotificationCreated(
                    title=f"notification {n}", body="your order has shipped",
                    data={"order": n}, channels=("in_app", "webhook") if push else ("in_app",))))
            await producer.publish_many(envs)
            published = i + len(envs)
            ahead = published / args.rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
            if published % 20_000 < batch:
                _progress(published, args.events, "sustained", started)
        publish_s = time.monotonic() - started
        await _projected(redis, settings, 600)
        deadline = time.monotonic() + 300
        while int((await receiver_stats(port))["distinct"]) < delivered:
            if time.monotonic() > deadline:
                raise TimeoutError("the webhook deliveries did not finish")
            await asyncio.sleep(0.2)
        print(file=sys.stderr)
    finally:
        stop.set()
        await sampler
        await _stop(worker)
    window = settings.partitions * args.snapshot_every
    filled = max(3 * window, args.users * args.inbox_max)
    after = [s for s in samples if s[0] >= filled]
    third = max(1, len(after) // 3)
    growth = max(m for _, m, _ in after[-third:]) / max(m for _, m, _ in after[:third]) \
        if len(after) >= 3 else None
    per_event = statistics.mean(m for _, m, _ in after) / max(
        1.0, statistics.mean(r for _, _, r in after)) if after else None
    out: dict[str, Any] = {
        "events": args.events, "users": args.users, "partitions": args.partitions,
        "webhook_deliveries": delivered, "publish_s": round(publish_s, 1),
        "sustained_eps": round(args.events / publish_s),
        "snapshot_every": args.snapshot_every, "window_target": window,
        "retained_window_max": max(r for _, _, r in samples),
        "used_memory_max": max(m for _, m, _ in samples),
        "memory_growth_ratio": None if growth is None else round(growth, 3),
        "bytes_per_retained_event": None if per_event is None else round(per_event),
        "samples": len(samples), "samples_after_fill": len(after),
        "memory_curve": [(s[0], s[1], s[2]) for s in samples[:: max(1, len(samples) // 40)]],
    }
    t = time.monotonic()
    await Replay(redis, settings).run()
    out["replay_from_snapshot_s"] = round(time.monotonic() - t, 2)
    t = time.monotonic()
    await Replay(redis, settings, from_start=True).run()
    out["replay_from_start_s"] = round(time.monotonic() - t, 2)
    equal = (await Verifier(redis, settings).run()).identical
    out["replay_equal"] = equal and (await Verifier(redis, settings, from_start=True)
                                     .run()).identical
    await redis.aclose()
    return out


# --------------------------------------------------------------------- phase 3
async def snapshot_phase(url: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings(url, folder / "snapshots", partitions=args.partitions,
                         inbox_max=args.inbox_max)
    redis = connect(settings)
    producer = Producer(redis, settings)
    await producer.start()
    worker = await _worker(settings, "projector")
    users = [f"s{i}" for i in range(args.snapshot_users)]
    try:
        started = time.monotonic()
        total = 4 * len(users)
        for rnd in range(5):
            for i in range(0, len(users), 500):
                await producer.publish_many([
                    producer.envelope(u, NotificationCreated(title=f"round {rnd}",
                                                             data={"r": rnd}))
                    for u in users[i:i + 500]])
            _progress(min(rnd + 1, 4) * len(users), total, "snapshot users", started)
            if rnd == 3:
                await _projected(redis, settings, 600)
                first = await _all_steps(settings, redis)
        await _projected(redis, settings, 600)
        again = await _all_steps(settings, redis)
        print(file=sys.stderr)
    finally:
        await _stop(worker)
        await redis.aclose()
    return {"snapshot_users": len(users), "snapshot_s": first["snapshot_s"],
            "snapshot_keys": first["keys"], "archive_entries": first["archived"],
            "archive_eps": round(first["archived"] / max(first["archive_s"], 1e-6)),
            "snapshot_incremental_s": again["snapshot_s"]}


async def _all_steps(settings: Settings, redis: Any) -> dict[str, Any]:
    """``herald snapshot``'s path for every partition: a snapshot, then the archive
    and trim below it (``Retention.step(force=True)``; the snapshot's time is the
    step's less the archive's)."""
    retention = Retention(settings, redis)
    snap_s = archive_s = 0.0
    archived = keys = 0
    for p in range(settings.partitions):
        t = time.monotonic()
        step = await retention.step(p, force=True)
        took = time.monotonic() - t
        spent = step.archived.seconds if step.archived else 0.0
        snap_s += took - spent
        archive_s += spent
        archived += step.archived.entries if step.archived else 0
        keys += step.keys
        if step.blocked_by:
            print(f"partition {p}: trimming held back by group {step.blocked_by}",
                  file=sys.stderr)
    return {"snapshot_s": round(snap_s, 2), "archive_s": archive_s, "archived": archived,
            "keys": keys}


# ------------------------------------------------------------------------ main
async def run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "scripts" / "bench_delivery.py"), "--receiver",
        stdout=asyncio.subprocess.PIPE)
    try:
        assert receiver.stdout is not None
        port = int((await asyncio.wait_for(receiver.stdout.readline(), 30)).strip())
        on: list[float] = []
        off: list[float] = []
        for pair in range(args.pairs):
            for enabled in ((True, False) if pair % 2 else (False, True)):
                eps = await live_phase(url, folder, args, enabled)
                (on if enabled else off).append(eps)
                print(f"live, retention {'on' if enabled else 'off'}: {eps:,.0f}/s",
                      file=sys.stderr)
        result: dict[str, Any] = {
            "live_eps_retention_on": round(statistics.median(on)),
            "live_eps_retention_off": round(statistics.median(off)),
            "ratio_live_retention": round(statistics.median(on) / statistics.median(off), 3),
            "live_rounds": {"on": [round(x) for x in on], "off": [round(x) for x in off]},
        }
        result.update(await snapshot_phase(url, folder, args))
        result.update(await sustained_phase(url, folder, args, port))
        result["machine"] = machine()
        return result
    finally:
        receiver.kill()
        await receiver.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rate", type=float, default=7000.0, help="sustained publishes/s")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--inbox-max", type=int, default=20)
    parser.add_argument("--snapshot-every", type=int, default=10_000,
                        help="entries per partition between snapshots")
    parser.add_argument("--webhook-every", type=int, default=20)
    parser.add_argument("--live-events", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--snapshot-users", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    if not 10_000 <= args.events <= 5_000_000 or not 100 <= args.rate <= 50_000:
        parser.error("--events must be 10k..5M and --rate 100..50k")
    if not 1 <= args.pairs <= 5 or not 1000 <= args.snapshot_users <= 500_000:
        parser.error("--pairs must be 1..5 and --snapshot-users 1000..500000")
    configure_logging("warning", "console")
    import uvloop

    with scratch_server() as (url, folder, _private):
        result = uvloop.run(run(args, url, folder))
    if args.json:
        print(orjson.dumps(result).decode())
        return 0
    for name, value in result.items():
        if name not in ("memory_curve",):
            print(f"{name:28s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
