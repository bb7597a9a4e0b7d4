"""The plumbing of scripts/bench_cluster.py, and its failover run.

Progress lines on stderr; ``herald`` child processes that die with the benchmark
(:data:`CHILDREN`: the benchmark stops whatever is left at its end); settings and
child environments on a private server or cluster; a process's CPU from /proc.

:func:`failover` is one kill -9 of a primary under load, on a fresh cluster of 3
primaries and 3 replicas, with one HERALD_PUBLISH_DURABILITY setting: a projector
worker runs while :class:`Publisher` publishes batches with an idempotency key on
every event, sending a batch that was not acknowledged again, the same envelopes,
until it is; the primary serving most partitions is killed; its figures are the
seconds from the kill to the first event of one of its partitions projected again
(read on the replica that takes over), then — with the dead node started again and
everything projected — the acknowledged events missing from the inboxes and the ids
in the log (so applied) or an inbox more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import redis as sync_redis
from redis.crc import key_slot

from herald.bench_project import PARTITIONS
from herald.benchproc import child_env, cpu_seconds
from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.queries import InboxQueries
from herald.streams import codec, positions
from herald.streams.cluster_server import ClusterHandle, Node, start_cluster
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import REDIS_ERRORS, connect
from herald.streams.errors import NotDurableError
from herald.streams.events import Envelope, NotificationCreated
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.producer import Producer
from herald.streams.server import die_with_parent_hook
from herald.streams.settings import Settings

FAILOVER_USERS = 500
BATCH_TIMEOUT_S = 60.0  # a batch not acknowledged for this long fails the run
POLL_S = 0.02
NOT_ACKED: tuple[type[Exception], ...] = (*REDIS_ERRORS, NotDurableError)
_T0 = time.monotonic()
CHILDREN: list[subprocess.Popen[bytes]] = []


def log(message: str) -> None:
    """A progress line on stderr (stdout carries only the result)."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def cpu_percent(pid: int, seconds: float) -> float:
    """CPU of process ``pid`` over the next ``seconds``, in % of one core."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds * 100


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank), None for no values."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(q / 100 * len(ranked)) - 1))]


def tally(acked: Iterable[str], logged: Iterable[str], inboxes: Iterable[str]
          ) -> tuple[int, int]:
    """(acknowledged ids missing from the inboxes, ids in the log or the inboxes more
    than once)."""
    seen = set(inboxes := list(inboxes))
    lost = sum(1 for i in acked if i not in seen)
    twice = {i for i, n in Counter(logged).items() if n > 1}
    twice |= {i for i, n in Counter(inboxes).items() if n > 1}
    return lost, len(twice)


def settings_for(url: str, cluster: bool, **overrides: Any) -> Settings:
    return Settings.from_env({}, redis_url=url, redis_cluster=cluster,
                             prefix=f"bench{uuid.uuid4().hex[:6]}", partitions=PARTITIONS,
                             log_level="warning", **overrides)


def env_for(settings: Settings, folder: Path, **extra: str) -> dict[str, str]:
    """A child's environment on ``settings``' server and prefix."""
    return child_env(settings.redis_url or "", folder, settings.prefix,
                     HERALD_REDIS_CLUSTER=str(settings.redis_cluster).lower(),
                     HERALD_PARTITIONS=str(settings.partitions), HERALD_LOG_LEVEL="warning",
                     HERALD_PUBLISH_DURABILITY=settings.publish_durability, **extra)


def spawn(args: Sequence[str], env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """``herald ARGS`` in a child that dies with this process; output to a file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "herald.cli", *args], env=env, stdout=out, stderr=out,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent_hook if sys.platform == "linux" else None)
    CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], wait_s: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``wait_s``; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def leases_held(redis: Any, settings: Settings, within_s: float = 60.0) -> bool:
    """Until every projector lease is held (the worker is up and consuming)."""
    keys = Keys(settings.prefix)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(*REDIS_ERRORS):
            async with redis.pipeline(transaction=False) as pipe:
                for p in range(settings.partitions):
                    pipe.exists(keys.lease(GROUP, p))
                if all(await pipe.execute()):
                    return True
        await asyncio.sleep(0.1)
    return False


# ----------------------------------------------------------------- failover
class Publisher:
    """Batches with an idempotency key on every event; a batch that is not acknowledged
    (a Redis error, NotDurableError) is sent again, the same envelopes, until it is."""

    def __init__(self, producer: Producer, batch: int) -> None:
        self.producer, self.batch = producer, batch
        self.acked: dict[str, str] = {}  # envelope id → user
        self.errors: Counter[str] = Counter()
        self.sent = 0

    def envelopes(self) -> list[Envelope]:
        out = []
        for _ in range(self.batch):
            user = f"fo-{random.randrange(FAILOVER_USERS)}"
            out.append(self.producer.envelope(user, NotificationCreated(title=f"n{self.sent}"),
                                              idempotency_key=f"k{self.sent}"))
            self.sent += 1
        return out

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch, given_up = self.envelopes(), time.monotonic() + BATCH_TIMEOUT_S
            while True:
                try:
                    await self.producer.publish_many(batch)
                    break
                except NOT_ACKED as exc:
                    self.errors[type(exc).__name__] += 1
                    if time.monotonic() > given_up:
                        raise
                    await asyncio.sleep(0.05)
            self.acked.update((e.id, e.user) for e in batch)


async def checkpoints(redis: Any, keys: Keys, partitions: Iterable[int]) -> dict[int, Any]:
    """Partition → its projector checkpoint as a comparable position (None: none yet)."""
    parts = list(partitions)
    async with redis.pipeline(transaction=False) as pipe:
        for p in parts:
            pipe.get(keys.checkpoint(p, LIVE_NS, GROUP))
        values = await pipe.execute()
    return {p: positions.parse(v.decode()) if v else None for p, v in zip(parts, values,
                                                                          strict=True)}


def replica_checkpoints(node: Node, keys: Keys, partitions: Iterable[int]) -> dict[int, Any]:
    """The same, read from a replica directly (READONLY): what it would be promoted with."""
    with node.client() as c:
        c.execute_command("READONLY")
        return {p: positions.parse(v) if (v := c.get(keys.checkpoint(p, LIVE_NS, GROUP)))
                else None for p in partitions}


async def failover(folder: Path, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """One kill -9 of a primary under load with ``setting``; its figures."""
    with start_cluster(folder / "cluster", masters=3, replicas=1, die_with_parent=True,
                       appendfsync=args.failover_appendfsync) as cluster:
        settings = settings_for(cluster.url, True, publish_durability=setting,
                                publish_replicas=1)
        keys = Keys(settings.prefix)
        redis = connect(settings)
        producer = Producer(redis, settings)
        publisher = Publisher(producer, args.failover_batch)
        proc = spawn(["worker", "--roles", "projector"], env_for(settings, folder),
                     folder / "worker.log")
        try:
            await producer.start()
            if not await leases_held(redis, settings):
                raise RuntimeError("the projector did not start")
            load = asyncio.create_task(publisher.run(args.failover_seconds))
            await asyncio.sleep(args.kill_after)
            figures = await _kill_and_recover(cluster, keys, settings, publisher)
            await load
            log(f"  {len(publisher.acked)} events acknowledged; errors met: "
                f"{dict(publisher.errors)}")
            figures["acked"] = len(publisher.acked)
            lost, twice = await _count(redis, settings, publisher, args.phase_timeout)
            figures.update(acked_lost=lost, duplicates=twice)
            if stop(proc) != 0:
                log("  the worker did not stop cleanly")
            return figures
        finally:
            stop(proc)
            await redis.aclose()


async def _kill_and_recover(cluster: ClusterHandle, keys: Keys, settings: Settings,
                            publisher: Publisher) -> dict[str, Any]:
    """Kill the primary serving most partitions; seconds until one of them projects
    again (read on the replica that takes over, directly: a Cluster client's own
    retries while its slot map is stale would be timed instead); then start the dead
    node again."""
    owners = cluster.slot_owners()
    tag_slot = {p: _slot(keys, p) for p in range(settings.partitions)}
    victim = max(cluster.primaries(),
                 key=lambda n: sum(owners[s].port == n.port for s in tag_slot.values()))
    affected = [p for p, s in tag_slot.items() if owners[s].port == victim.port]
    replica = next(n for n in cluster.nodes if n.replica_of == victim.port)
    cluster.kill(victim)
    killed = time.monotonic()
    before = replica_checkpoints(replica, keys, affected)
    log(f"  killed primary {victim.port} ({len(affected)} partitions) after "
        f"{len(publisher.acked)} acknowledged events")
    recovered = promoted = None
    while time.monotonic() - killed < 60 and recovered is None:
        if promoted is None and await asyncio.to_thread(_is_primary, replica):
            promoted = time.monotonic() - killed
            log(f"  replica {replica.port} promoted after {promoted:.1f}s")
        with contextlib.suppress(sync_redis.RedisError):
            now = await asyncio.to_thread(replica_checkpoints, replica, keys, affected)
            if any(v is not None and (before[p] is None or v > before[p])
                   for p, v in now.items()):
                recovered = time.monotonic() - killed
                log(f"  first event of a failed-over partition projected after "
                    f"{recovered:.2f}s")
        await asyncio.sleep(POLL_S)
    # Only now: a node restarted at once answers CLUSTERDOWN to clients whose slot map
    # still names it (it waits before serving after a restart, then learns it is a
    # replica), which would hold the publisher up for seconds, and be timed here.
    log("  restarting the dead node (it rejoins as the new primary's replica)")
    await asyncio.to_thread(cluster.restart, victim)
    await asyncio.to_thread(cluster.wait_ok, 60)
    return {"failover_s": recovered}


def _is_primary(node: Node) -> bool:
    with contextlib.suppress(sync_redis.RedisError), node.client() as c:
        return bool(c.info("replication").get("role") == "master")
    return False


def _slot(keys: Keys, partition: int) -> int:
    return int(key_slot(keys.tag(partition).encode()))


async def _count(redis: Any, settings: Settings, publisher: Publisher, within_s: float
                 ) -> tuple[int, int]:
    """Once every partition is projected to its end: (acked lost, duplicates)."""
    keys = Keys(settings.prefix)
    parts = range(settings.partitions)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(*REDIS_ERRORS):
            ends = {}
            for p in parts:
                last = await redis.xrevrange(keys.stream(p), count=1)
                ends[p] = positions.parse(last[0][0].decode()) if last else None
            if await checkpoints(redis, keys, parts) == ends:
                break
        await asyncio.sleep(0.1)
    else:
        log("  not everything was projected in time")
    logged: list[str] = []
    for p in parts:
        logged += [codec.decode(f[ENTRY_FIELD]).id for _, f in await redis.xrange(
            keys.stream(p))]
    queries, inboxes = InboxQueries(redis, settings), []
    for user in sorted(set(publisher.acked.values())):
        cursor = None
        while True:
            page = await queries.page(user, limit=100, cursor=cursor)
            inboxes += [item["id"] for item in page.items]
            if (cursor := page.next_cursor) is None:
                break
    return tally(publisher.acked, logged, inboxes)
