"""Benchmark of the projector: catch-up (one and two processes), live, replay, ceiling.

    .venv/bin/python scripts/bench_project.py [--events 200000] [--rounds 3] [--json]

One run, one private server (or ``REDIS_URL``), 64 partitions, 10k users, events of
~200 bytes of content (85 % notification.created, 10 % read, 5 % archived):

- ``projector_1_eps`` / ``projector_2_eps``: one, then two ``herald worker --roles
  projector`` processes drain the pre-filled log (timed from the first lease taken to
  the last checkpoint reaching the end of its partition);
- ``live_eps``: one worker running while this process publishes pipelined batches of
  100; first publish to last event projected;
- ``replay_eps``: ``herald replay`` over the same log: events per second of rebuilding
  and switching (its own figure, without the process start-up); ``replay_total_eps``
  counts the deletion of the old namespace's keys too;
- ``bare_apply_eps``: the ceiling — the same apply script on the same batches, built
  beforehand, driven by a bare pipelined loop (no runtime, no decoding, no acks).

``projector_1_eps``, ``bare_apply_eps`` and ``ratio_projector_to_bare`` come from
``--rounds`` pairs (default 3): each one-projector catch-up is followed at once by
the ceiling on the same log and dataset, and the medians are reported (the ratio's
is the median of the pairs' ratios), every pair in ``*_rounds``. This machine's speed
swings by a third within minutes, and an automatic AOF rewrite (a fork dumping the
dataset) costs the projector, which needs both cores, more than the bare loop: a
single catch-up set against a ceiling measured a minute later compared two moments,
not two loops.

Every phase is bounded by ``--phase-timeout``; a phase that runs out reports None.
The server keeps an append-only file (``appendfsync everysec``) as ``herald run``
does, with the server's automatic rewrites (``--no-aof-rewrite`` turns them off).
Each timed phase starts right after a ``BGREWRITEAOF`` it waits for (not timed): the
benchmark builds and deletes whole namespaces phase after phase, so its file doubles
(and the server forks to rewrite it) every few tens of thousands of events, and a
rewrite falls on whichever phase is running — without the compaction, on the first
phases more than the last. The rewrites during each phase are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from redis.exceptions import ResponseError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from herald.consumers.group.handler import entries_of  # noqa: E402
from herald.consumers.projection.applier import BUILD, GROUP, Applier, Preparer  # noqa: E402
from herald.consumers.replay.rebuild import delete_namespace  # noqa: E402
from herald.streams.connection import Batch, connect  # noqa: E402
from herald.streams.events import (  # noqa: E402
    NotificationArchived,
    NotificationCreated,
    NotificationRead,
    Payload,
)
from herald.streams.keys import LIVE_NS, Keys  # noqa: E402
from herald.streams.log import configure_logging  # noqa: E402
from herald.streams.producer import Producer  # noqa: E402
from herald.streams.server import start_server  # noqa: E402
from herald.streams.settings import Settings  # noqa: E402

PARTITIONS = 64
USERS = 10_000
PUBLISH_BATCH = 100  # "pipelined x100"
PREFILL_BATCH = 1000
BARE_PIPELINE = 8  # script calls per round trip in the ceiling loop
BARE_NS = "bare"  # the ceiling's namespace (deleted after each run of it)
POLL_S = 0.02
BODY = ("Your order has shipped and is on its way; track the parcel from the link below. "
        "Delivery is expected within two working days, thank you for shopping with us!")


class Workload:
    """Seeded events for USERS users: mostly new items, some read or archived."""

    def __init__(self, producer: Producer, seed: int = 1) -> None:
        self.producer = producer
        self.rng = random.Random(seed)
        self.items: dict[str, list[str]] = {}
        self.count = 0

    def payload(self, user: str) -> Payload:
        mine = self.items.get(user)
        r = self.rng.random()
        if mine and r < 0.10:
            return NotificationRead(notification_id=self.rng.choice(mine))
        if mine and r < 0.15:
            return NotificationArchived(notification_id=self.rng.choice(mine))
        return NotificationCreated(title=f"Order {self.count:08d} shipped", body=BODY,
                                   category="orders", data={"order": self.count})

    def batch(self, n: int) -> list[Any]:
        out = []
        for _ in range(n):
            user = f"user-{self.rng.randrange(USERS)}"
            env = self.producer.envelope(user, self.payload(user))
            if isinstance(env.payload, NotificationCreated):
                self.items.setdefault(user, []).append(env.id)
            out.append(env)
            self.count += 1
        return out


class Bench:
    def __init__(self, settings: Settings, redis: Any, timeout: float) -> None:
        self.settings, self.redis, self.timeout = settings, redis, timeout
        self.keys = Keys(settings.prefix)
        self.producer = Producer(redis, settings)
        self.work = Workload(self.producer)
        self.last: dict[int, str] = {}
        self._bare: tuple[Applier, list[tuple[list[str], list[Any]]], int] | None = None

    async def publish(self, envelopes: list[Any], batch: int) -> float:
        """Publish events (made beforehand by ``self.work.batch``) in pipelined batches;
        seconds taken. Making the events is not timed: the figures time publishing and
        projecting, not the benchmark's own event generator."""
        start = time.perf_counter()
        for done in range(0, len(envelopes), batch):
            for a in await self.producer.publish_many(envelopes[done : done + batch]):
                self.last[a.partition] = a.position
        return time.perf_counter() - start

    async def checkpoints(self, ns: str = LIVE_NS) -> dict[int, str | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(PARTITIONS):
                pipe.get(self.keys.checkpoint(p, ns, GROUP))
            values = await pipe.execute()
        return {p: v.decode() if v else None for p, v in enumerate(values)}

    async def caught_up(self) -> bool:
        ckpt = await self.checkpoints()
        return all(ckpt[p] == pos for p, pos in self.last.items())

    async def wait_until(self, check: Any, deadline: float) -> bool:
        while time.perf_counter() < deadline:
            if await check():
                return True
            await asyncio.sleep(POLL_S)
        return False

    async def any_lease(self) -> bool:
        return bool(await self.redis.exists(*(self.keys.lease(GROUP, p) for p in range(4))))

    async def reset(self) -> None:
        """Forget the projection and the group, keep the log."""
        parts = list(range(PARTITIONS))
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in parts:
                pipe.xgroup_destroy(self.keys.stream(p), GROUP)
                pipe.delete(self.keys.lease(GROUP, p), self.keys.partition_view(p))
            pipe.delete(self.keys.members(GROUP))
            await pipe.execute(raise_on_error=False)
        await delete_namespace(self.redis, self.keys, LIVE_NS, parts)

    def env(self) -> dict[str, str]:
        """The environment of a Herald process on this benchmark's data."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(REDIS_URL=self.settings.redis_url or "", HERALD_PREFIX=self.settings.prefix,
                   HERALD_PARTITIONS=str(PARTITIONS), HERALD_LOG_LEVEL="warning",
                   HERALD_LOG_FORMAT="json", PYTHONPATH=str(REPO),
                   HERALD_REDIS_CLUSTER=str(self.settings.redis_cluster).lower())
        return env

    def spawn(self, n: int) -> list[subprocess.Popen[bytes]]:
        return [subprocess.Popen([sys.executable, "-m", "herald.cli", "worker", "--roles",
                                  "projector"], cwd=REPO, env=self.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(n)]

    @staticmethod
    def stop(procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    async def catch_up(self, processes: int, events: int) -> float | None:
        procs = self.spawn(processes)
        try:
            start_deadline = time.perf_counter() + 30
            if not await self.wait_until(self.any_lease, start_deadline):
                return None
            start = time.perf_counter()
            if not await self.wait_until(self.caught_up, start + self.timeout):
                return None
            return events / (time.perf_counter() - start)
        finally:
            self.stop(procs)

    async def live(self, events: int) -> float | None:
        procs = self.spawn(1)
        try:
            ready = await self.wait_until(self.any_lease, time.perf_counter() + 30)
            await self.wait_until(self.caught_up, time.perf_counter() + self.timeout)
            if not ready:
                return None
            envelopes = self.work.batch(events)
            start = time.perf_counter()  # the first publish
            await self.publish(envelopes, PUBLISH_BATCH)
            if not await self.wait_until(self.caught_up, time.perf_counter() + self.timeout):
                return None
            return events / (time.perf_counter() - start)
        finally:
            self.stop(procs)

    def replay(self) -> tuple[float | None, float | None, str]:
        done = subprocess.run([sys.executable, "-m", "herald.cli", "replay", "--quiet"],
                              cwd=REPO, env=self.env(), capture_output=True, text=True,
                              timeout=self.timeout + 60)
        # "replayed N events (from S snapshots and the log after them) in Ts (R events/s)"
        match = re.search(r"replayed (\d+) events (?:\([^)]*\) )?in [\d.]+s "
                          r"\(([\d,]+) events/s\).*; ([\d.]+)s in all", done.stdout)
        if done.returncode != 0 or match is None:
            return None, None, done.stdout + done.stderr
        total = int(match.group(1)) / float(match.group(3))
        return float(match.group(2).replace(",", "")), total, done.stdout.strip()

    async def bare_calls(self) -> tuple[Applier, list[tuple[list[str], list[Any]]], int]:
        """The ceiling's script calls over the whole log, built once (not timed)."""
        if self._bare is None:
            preparer, applier = Preparer(self.settings), Applier(self.redis, self.settings)
            calls, total = [], 0
            for p in range(PARTITIONS):
                read = Batch(self.redis)  # rows raw, as the runtime reads them
                read.execute_command("XRANGE", self.keys.stream(p), "-", "+")
                rows = (await read.execute())[0]
                for i in range(0, len(rows), self.settings.read_batch):
                    chunk = entries_of(rows[i : i + self.settings.read_batch])
                    batch = preparer.prepare(p, BARE_NS, chunk)
                    calls.append(applier.call_args(p, BARE_NS, batch, mode=BUILD))
                    total += len(chunk)
            self._bare = applier, calls, total
        return self._bare

    async def rewrites(self) -> int:
        """AOF rewrites so far."""
        return int((await self.redis.info("persistence")).get("aof_rewrites", 0))

    async def compact(self) -> int:
        """Rewrite the append-only file now and wait for it (not timed); the rewrite
        count after it. The phase that follows then pays for the automatic rewrites its
        own writes trigger, not for those the phases before it left due."""
        persistence = await self.redis.info("persistence")
        if persistence.get("aof_enabled"):
            with contextlib.suppress(ResponseError):  # one already running: wait for it
                await self.redis.bgrewriteaof()
            deadline = time.perf_counter() + self.timeout
            while time.perf_counter() < deadline:
                await asyncio.sleep(POLL_S)
                persistence = await self.redis.info("persistence")
                if not (persistence.get("aof_rewrite_in_progress")
                        or persistence.get("aof_rewrite_scheduled")):
                    break
        return int(persistence.get("aof_rewrites", 0))

    async def timed(self, phase: Any) -> tuple[Any, int]:
        """Run one timed phase after a compaction; its result and the automatic AOF
        rewrites during it."""
        before = await self.compact()
        result = await phase
        return result, await self.rewrites() - before

    async def bare(self) -> float | None:
        """The ceiling: the apply script alone, on batches built before the clock starts."""
        applier, calls, total = await self.bare_calls()
        await applier.load()
        start = time.perf_counter()
        for i in range(0, len(calls), BARE_PIPELINE):
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys, args in calls[i : i + BARE_PIPELINE]:
                    applier.queue(pipe, keys, args)
                await pipe.execute()
            if time.perf_counter() - start > self.timeout:
                return None
        elapsed = time.perf_counter() - start
        await delete_namespace(self.redis, self.keys, BARE_NS, list(range(PARTITIONS)))
        return total / elapsed


def _fmt(value: float | None) -> str:
    return "timed out" if value is None else f"{value:,.0f} events/s"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _median(values: list[float | None]) -> float | None:
    """The median; a timed-out run (None) counts as the slowest."""
    if not values:
        return None
    ranked = sorted(values, key=lambda v: (v is not None, v or 0.0))
    middle = len(ranked) // 2
    if len(ranked) % 2:
        return ranked[middle]
    low, high = ranked[middle - 1], ranked[middle]
    return None if low is None or high is None else (low + high) / 2


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    settings = Settings.from_env({}, redis_url=url, prefix=f"bench{uuid.uuid4().hex[:6]}",
                                 partitions=PARTITIONS, log_level="warning")
    redis = connect(settings)
    bench = Bench(settings, redis, args.phase_timeout)
    out: dict[str, Any] = {"events": args.events, "partitions": PARTITIONS, "users": USERS}
    if args.no_aof_rewrite:
        await redis.config_set("auto-aof-rewrite-percentage", 0)
    try:
        seconds = await bench.publish(bench.work.batch(args.events), PREFILL_BATCH)
        out["publish_eps"] = args.events / seconds
        log(f"prefilled {args.events} events in {seconds:.1f}s ({_fmt(out['publish_eps'])})")
        await bench.bare_calls()
        # The ratio's two figures, in pairs: each catch-up next to a ceiling measured
        # right after it on the same log and dataset, the median of the pairs reported.
        ones, bares, ratios, rewrites = [], [], [], []
        for i in range(args.rounds):
            if i:
                await bench.reset()
            one, during_one = await bench.timed(bench.catch_up(1, args.events))
            bare, during_bare = await bench.timed(bench.bare())
            ones.append(one)
            bares.append(bare)
            ratios.append(one / bare if one and bare else None)
            rewrites.append([during_one, during_bare])
            log(f"round {i + 1}: catch-up, 1 projector: {_fmt(one)}; bare apply ceiling: "
                f"{_fmt(bare)}; ratio {_ratio(ratios[-1])}; AOF rewrites during them "
                f"{during_one} / {during_bare}")
        out["projector_1_eps"], out["bare_apply_eps"] = _median(ones), _median(bares)
        out["ratio_projector_to_bare"] = _median(ratios)
        out.update(projector_1_rounds=ones, bare_apply_rounds=bares, ratio_rounds=ratios,
                   aof_rewrites_rounds=rewrites)
        log(f"catch-up, 1 projector:  {_fmt(out['projector_1_eps'])} (median of {args.rounds})")
        log(f"bare apply ceiling: {_fmt(out['bare_apply_eps'])} (median of {args.rounds})")
        log(f"ratio 1 projector / bare ceiling: {_ratio(out['ratio_projector_to_bare'])} "
            f"(median of {args.rounds} pairs)")
        await bench.reset()
        out["projector_2_eps"], during = await bench.timed(bench.catch_up(2, args.events))
        log(f"catch-up, 2 projectors: {_fmt(out['projector_2_eps'])}; AOF rewrites {during}")
        out["live_eps"], during = await bench.timed(bench.live(args.live_events or args.events))
        out["live_events"] = args.live_events or args.events
        log(f"live (publish x{PUBLISH_BATCH} + 1 projector): {_fmt(out['live_eps'])}; "
            f"AOF rewrites {during}")
        (out["replay_eps"], out["replay_total_eps"], text), during = await bench.timed(
            asyncio.to_thread(bench.replay))
        out["replay_events"] = args.events + out["live_events"]
        log(f"replay: {_fmt(out['replay_eps'])} rebuild and switch, "
            f"{_fmt(out['replay_total_eps'])} with the old namespace deleted; AOF rewrites "
            f"{during} ({text})")
        p1 = out["projector_1_eps"]
        if out["projector_2_eps"] and p1:
            log(f"ratio 2 projectors / 1 projector: {out['projector_2_eps'] / p1:.2f}")
        persistence = await redis.info("persistence")
        out["aof_enabled"] = bool(persistence.get("aof_enabled"))
        out["aof_rewrites"] = int(persistence.get("aof_rewrites", 0))  # compactions included
    finally:
        await redis.aclose()
    return out


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the log")
    parser.add_argument("--live-events", type=int, default=None,
                        help="events published in the live phase (default: --events)")
    parser.add_argument("--phase-timeout", type=float, default=120.0,
                        help="seconds allowed per phase")
    parser.add_argument("--no-aof-rewrite", action="store_true",
                        help="turn the server's automatic AOF rewrites off for the run (a "
                             "rewrite forks and dumps the whole dataset: a big, periodic CPU "
                             "cost that lands in whichever phase runs then)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="pairs of one-projector catch-up and bare ceiling, run one after "
                             "the other; their medians (and the median ratio) are reported")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    configure_logging("warning", "console")  # stdout carries only the results
    url = os.environ.get("REDIS_URL")
    handle = None
    if not url:
        folder = Path(tempfile.mkdtemp(prefix="herald-bench-"))
        handle = start_server(folder)
        url = handle.url
    try:
        out = asyncio.run(run(args, url))
    finally:
        if handle is not None:
            handle.stop()
            shutil.rmtree(folder, ignore_errors=True)  # its append-only file: up to GBs
    out["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                      "server_allocator": handle.allocator if handle else "unknown (REDIS_URL)"}
    if args.json:
        print(orjson.dumps(out).decode())
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
