"""Benchmark of Herald on a Redis Cluster: live throughput, idle cost, signal latency,
failover.

    .venv/bin/python scripts/bench_cluster.py [--live-events 100000] [--json]

Everything runs on 127.0.0.1, on servers this run starts in a temporary folder that
it deletes at the end (every process it started is stopped, also on Ctrl-C/SIGTERM):

- ``live_eps_standalone``, ``live_eps_cluster``, ``ratio_cluster_to_standalone``: the
  projector benchmark's live run (scripts/bench_project.py ``Bench.live``: one ``herald
  worker --roles projector``, this process publishing pipelined batches of 100, 64
  partitions) on a private server, then on a private cluster of 3 primaries and 3
  replicas;
- ``idle_worker_cpu_pct``: a ``herald worker`` with every role on that cluster, nothing
  published — its process's CPU over ``--idle-seconds`` once it holds every projector
  lease and a warm-up passed, in % of one core (/proc/<pid>/stat utime + stime);
- ``idle_run_cpu_pct``: an idle ``herald run`` with its own private server and data
  folder, its Python process only, measured the same way;
- ``publish_signal_p50_ms``, ``publish_signal_p99_ms``: on the cluster, with a projector
  worker running, from the start of a publish to the "user changed" signal for it
  reaching a SignalSubscriber (``--signals`` publishes, one every ``--signal-every``);
- per durability setting ``leader``, ``replica``, ``fsync`` (HERALD_PUBLISH_DURABILITY,
  one replica), each on a fresh 3+3 cluster (``--failover-appendfsync``, default
  ``always``): a projector worker runs while this process publishes batches with an
  idempotency key on every event, sending a batch that was not acknowledged again with
  the same keys; ``--kill-after`` seconds in, the primary serving most partitions is
  killed (SIGKILL); once its replica is promoted the dead node is started again and
  rejoins as the new primary's replica (as a supervisor would restart it);
  ``failover_s_<setting>`` is the time from the kill to the first event of one of the
  killed primary's partitions projected again (its checkpoint passes what the promoted
  replica had), ``acked_lost_<setting>`` the acknowledged events missing from the inboxes
  once everything is projected, ``duplicates_<setting>`` the ids appended (so applied)
  more than once.

The failover run and the plumbing shared by the phases are in scripts/benchcluster.py.
Details (retries, errors met, counts) are printed on stderr as the run goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis as sync_redis

from herald.bench_project import Bench
from herald.benchcluster import (
    CHILDREN,
    cpu_percent,
    env_for,
    failover,
    leases_held,
    log,
    percentile,
    settings_for,
    spawn,
    stop,
)
from herald.benchproc import wait_up
from herald.streams.cluster_server import start_cluster
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from herald.streams.log import configure_logging
from herald.streams.producer import Producer
from herald.streams.server import free_port, start_server
from herald.streams.signals import SignalSubscriber

SETTINGS = ("leader", "replica", "fsync")


# ------------------------------------------------------------------- phases
async def live(url: str, cluster: bool, events: int, phase_s: float) -> float | None:
    settings = settings_for(url, cluster)
    redis = connect(settings)
    try:
        return await Bench(settings, redis, phase_s).live(events)
    finally:
        await redis.aclose()


async def idle_worker(url: str, folder: Path, args: argparse.Namespace) -> float | None:
    settings = settings_for(url, True)
    redis = connect(settings)
    proc = spawn(["worker"], env_for(settings, folder), folder / "idle-worker.log")
    try:
        if not await leases_held(redis, settings):
            return None
        await asyncio.sleep(args.warmup)
        return await asyncio.to_thread(cpu_percent, proc.pid, args.idle_seconds)
    finally:
        stop(proc)
        await redis.aclose()


async def idle_run(folder: Path, args: argparse.Namespace) -> float | None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")
           and k != "REDIS_URL"}
    env.update(HERALD_DATA_DIR=str(folder / "data"), HERALD_HOST="127.0.0.1",
               HERALD_PORT=str(port), HERALD_LOG_LEVEL="warning", HERALD_LOG_FORMAT="json")
    proc = spawn(["run"], env, folder / "run.log")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_up(session, f"http://127.0.0.1:{port}", proc)
        await asyncio.sleep(args.warmup)
        return await asyncio.to_thread(cpu_percent, proc.pid, args.idle_seconds)
    finally:
        stop(proc)


async def publish_to_signal(url: str, folder: Path, args: argparse.Namespace
                            ) -> tuple[float | None, float | None]:
    """(p50, p99) in ms from the start of a publish to its user's signal."""
    settings = settings_for(url, True)
    keys = Keys(settings.prefix)
    redis = connect(settings)
    started: dict[str, float] = {}
    arrived: dict[str, float] = {}
    confirmed: set[str] = set()
    subscribed, complete = asyncio.Event(), asyncio.Event()

    def on_message(_channel: str, data: bytes) -> None:
        now = time.perf_counter()
        for user in orjson.loads(data).get("users", {}):
            if user in started and user not in arrived:
                arrived[user] = now
        if len(arrived) == args.signals:
            complete.set()

    def on_subscribed(channel: str) -> None:
        confirmed.add(channel)
        if len(confirmed) == settings.partitions:
            subscribed.set()

    subscriber = SignalSubscriber(redis, on_message, on_subscribed, name="bench")
    proc = spawn(["worker", "--roles", "projector"], env_for(settings, folder),
                 folder / "signal-worker.log")
    try:
        producer = Producer(redis, settings)
        await producer.start()
        if not await leases_held(redis, settings):
            return None, None
        await subscriber.subscribe(keys.signal_channel(p) for p in range(settings.partitions))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), 15)
        for i in range(args.signals):
            user = f"signal-{i}"  # one user per publish: its signal names its publish
            env = producer.envelope(user, NotificationCreated(title=f"signal {i}"))
            started[user] = time.perf_counter()
            await producer.publish(env)
            await asyncio.sleep(args.signal_every)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(complete.wait(), 5)
        latencies = [(arrived[u] - started[u]) * 1000 for u in arrived]
        log(f"  {len(arrived)} of {len(started)} signals arrived")
        return percentile(latencies, 50), percentile(latencies, 99)
    finally:
        await subscriber.stop()
        stop(proc)
        await redis.aclose()


# --------------------------------------------------------------------- main
async def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("standalone: a private server")
    server = start_server(folder / "standalone", die_with_parent=True)
    try:
        with sync_redis.Redis.from_url(server.url) as client:
            info = client.info("server")
        version = info.get("valkey_version") or info.get("redis_version")
        out["live_eps_standalone"] = await live(server.url, False, args.live_events,
                                                args.phase_timeout)
        log(f"live, standalone: {_eps(out['live_eps_standalone'])}")
    finally:
        server.stop()
    log("cluster: 3 primaries, 3 replicas")
    with start_cluster(folder / "cluster", die_with_parent=True) as cluster:
        out["live_eps_cluster"] = await live(cluster.url, True, args.live_events,
                                             args.phase_timeout)
        log(f"live, cluster: {_eps(out['live_eps_cluster'])}")
        standalone, clustered = out["live_eps_standalone"], out["live_eps_cluster"]
        out["ratio_cluster_to_standalone"] = (clustered / standalone
                                              if standalone and clustered else None)
        out["idle_worker_cpu_pct"] = await idle_worker(cluster.url, folder / "idle", args)
        log(f"idle worker (every role) on the cluster: {_pct(out['idle_worker_cpu_pct'])}")
        p50, p99 = await publish_to_signal(cluster.url, folder / "signal", args)
        out["publish_signal_p50_ms"], out["publish_signal_p99_ms"] = p50, p99
        log(f"publish → signal on the cluster: p50 {_ms(p50)}, p99 {_ms(p99)}")
    out["idle_run_cpu_pct"] = await idle_run(folder / "run", args)
    log(f"idle herald run (its Python process): {_pct(out['idle_run_cpu_pct'])}")
    for setting in args.settings:
        log(f"failover with HERALD_PUBLISH_DURABILITY={setting}")
        figures = await failover(folder / f"failover-{setting}", setting, args)
        for name in ("failover_s", "acked_lost", "duplicates"):
            out[f"{name}_{setting}"] = figures[name]
        log(f"  {setting}: failover {figures['failover_s']}s, acknowledged lost "
            f"{figures['acked_lost']} of {figures['acked']}, duplicates {figures['duplicates']}")
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "server": f"{'valkey' if 'valkey_version' in info else 'redis'} "
                                f"{version}"}
    return out


def _eps(value: float | None) -> str:
    return "timed out" if value is None else f"{value:,.0f} events/s"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} % of a core"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--live-events", type=int, default=100_000,
                        help="events published in each live run")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="seconds of idle CPU measured")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds an idle process runs before it is measured")
    parser.add_argument("--signals", type=int, default=300, help="paced publishes")
    parser.add_argument("--signal-every", type=float, default=0.02,
                        help="seconds between two of them")
    parser.add_argument("--failover-seconds", type=float, default=15.0,
                        help="seconds of publishing in each failover run")
    parser.add_argument("--kill-after", type=float, default=4.0,
                        help="seconds into it the primary is killed")
    parser.add_argument("--failover-batch", type=int, default=10, help="events per publish")
    parser.add_argument("--failover-appendfsync", choices=("always", "everysec"),
                        default="always", help="the failover clusters' appendfsync")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="durability settings to fail over with")
    parser.add_argument("--phase-timeout", type=float, default=120.0,
                        help="seconds allowed per phase")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (last on stdout)")
    args = parser.parse_args(argv)
    args.settings = [s for s in args.settings.split(",") if s]
    if unknown := [s for s in args.settings if s not in SETTINGS]:
        parser.error(f"unknown durability setting {unknown[0]!r}")
    if not 0 < args.kill_after < args.failover_seconds:
        parser.error("--kill-after must be within --failover-seconds")
    if args.live_events < 1000 or args.signals < 1 or args.failover_batch < 1:
        parser.error("--live-events ≥ 1000, --signals and --failover-batch ≥ 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", "console")
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C: every child and server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    folder = Path(tempfile.mkdtemp(prefix="herald-bench-cluster-"))
    try:
        out = asyncio.run(measure(args, folder))
    finally:
        for proc in CHILDREN:
            stop(proc, 5)
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(orjson.dumps(out).decode())
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
