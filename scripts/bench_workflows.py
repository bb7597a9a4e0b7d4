"""Benchmark workflows: runs started, timers fired, waits matched, memory, simulation.

The seed's escalation reduced to its timing core, delays in seconds: every run sends an
in-app notification, then waits for ``order.paid`` (matched on ``order_id``) for
``--wait`` seconds, then sends an SMS-like in-app reminder unless the wait matched. One
process runs the projector, the scheduler and the ``workflows`` role (like
``herald run``) against a private server (or ``REDIS_URL``, in a fresh prefix whose keys
it deletes). It triggers ``--runs`` runs (in batches of :data:`BATCH`, one user each),
waits until all of them are waiting, pays ``--matches`` of them during the wait, lets
the rest time out, then simulates the period.

Keys (``--json`` prints one object, last):
``runs_started_per_s`` (triggers appended until every run is waiting, per second),
``step_fire_p99_ms`` (a timed-out wait's due time to its ``timed_out`` decision in the
log), ``wait_match_p99_ms`` (a business event's position to its ``matched`` decision),
``bytes_per_waiting_run`` (``MEMORY USAGE`` of the run's keys — state, timeline, timer
entry and its schedule member, notification marks — while all wait, over runs),
``simulate_eps`` (entries per second through ``herald workflow simulate``'s reader and
plan), ``sends_exactly_once`` (every run's notifications in the log: each (run, step)
exactly once, the reminder only for unpaid runs).

Bounded: ``--runs`` ≤ 100,000 (``--full`` sets it), ``--wait`` ≤ 600 s; each phase gives
up after its own time limit and reports what it saw.

    python scripts/bench_workflows.py [--runs 2000] [--wait 8] [--matches 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter
from typing import Any

import orjson

from herald.benchproc import machine
from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.projector import projector_factory
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.schedule.scheduler import Scheduler
from herald.consumers.workflows.engine import factory as workflows_factory
from herald.consumers.workflows.simulate import Simulator
from herald.streams import codec
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import connect
from herald.streams.events import (
    WORKFLOWS_USER,
    BusinessEventReceived,
    WorkflowRegistered,
    WorkflowStepDecided,
    WorkflowTriggered,
)
from herald.streams.keys import Keys
from herald.streams.log import configure_logging
from herald.streams.producer import Producer, now_ms
from herald.streams.server import scratch_server
from herald.streams.settings import Settings

BATCH = 500
READ_CHUNK = 5000
MAX_RUNS = 100_000
MEMORY_SAMPLE = 200  # runs whose keys are measured with MEMORY USAGE


def flow(wait_s: float) -> dict[str, Any]:
    return {"example": {"order_id": "1"},
            "cancel_on": [],
            "steps": [
                {"id": "placed", "type": "send", "channels": ["in_app"],
                 "title": "Order {{ order_id }} placed"},
                {"id": "paid", "type": "wait_for", "event": "order.paid", "match": "order_id",
                 "timeout": f"{int(wait_s * 1000)}ms", "on_match": "stop"},
                {"id": "remind", "type": "send", "channels": ["in_app"],
                 "title": "Pay order {{ order_id }}", "if": "!steps.paid.matched"}]}


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def _log(redis: Any, settings: Settings, since: int) -> list[tuple[int, Any]]:
    keys, out = Keys(settings.prefix), []
    for p in range(settings.partitions):
        start = f"{since}-0"
        while True:
            rows = await redis.xrange(keys.stream(p), start, "+", count=READ_CHUNK)
            for position, fields in rows:
                out.append((int(position.split(b"-")[0]), codec.decode(fields[ENTRY_FIELD])))
            if len(rows) < READ_CHUNK:
                break
            start = "(" + rows[-1][0].decode()
    return out


async def _until(check: Any, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def _memory(redis: Any, settings: Settings, runs: list[tuple[int, str, str]]) -> int:
    """Bytes of the sampled runs' keys (and their schedule members), per run."""
    keys, total = Keys(settings.prefix), 0
    for p, run, _user in runs[:MEMORY_SAMPLE]:
        for key in (keys.workflow_run(p, run), keys.workflow_run_log(p, run),
                    keys.scheduled(p, f"wft.{run}.1")):
            total += await redis.memory_usage(key) or 0
        total += len(f"wft.{run}.1") + 16  # its member and score in the partition's schedule
        total += len(run) + 8  # its member of the user's open runs
        note = await redis.hget(keys.workflow_run(p, run), "n:placed")
        if note is not None:
            total += await redis.memory_usage(keys.workflow_note(p, note.decode())) or 0
    return total // max(1, min(len(runs), MEMORY_SAMPLE))


async def bench(url: str, runs: int, wait_s: float, matches: int, partitions: int
                ) -> dict[str, Any]:
    settings = Settings.from_env({}, redis_url=url, prefix=f"bwf{uuid.uuid4().hex[:8]}",
                                 partitions=partitions, log_level="warning")
    redis = connect(settings)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    out: dict[str, Any] = {"runs": runs, "wait_s": wait_s, "matches": matches,
                           "partitions": partitions}
    try:
        producer = Producer(redis, settings)
        await producer.start()
        queries = InboxQueries(redis, settings)
        tasks.append(asyncio.create_task(
            GroupRuntime(settings, redis, projector_factory, block_ms=100).run(stop)))
        tasks.append(asyncio.create_task(Scheduler(settings, redis, consumer="b").run(stop)))
        tasks.append(asyncio.create_task(GroupRuntime(
            settings, redis, workflows_factory, consumer="w", block_ms=100).run(stop)))
        reg = await producer.publish(producer.envelope(WORKFLOWS_USER, WorkflowRegistered(
            workflow_key="seed", version=1, definition=flow(wait_s))))
        await queries.wait_for(reg.partition, reg.position, 30)
        t0 = now_ms()
        started = time.perf_counter()
        triggered: list[tuple[int, str, str]] = []
        for first in range(0, runs, BATCH):
            envs = [producer.envelope(f"buyer-{i}", WorkflowTriggered(
                workflow_key="seed", version=1, data={"order_id": str(i)}))
                for i in range(first, min(runs, first + BATCH))]
            done = await producer.publish_many(envs)
            triggered += [(a.partition, a.id, e.user) for a, e in zip(done, envs, strict=True)]
        out["trigger_append_s"] = round(time.perf_counter() - started, 2)
        keys = Keys(settings.prefix)

        async def all_waiting() -> bool:
            async with redis.pipeline(transaction=False) as pipe:
                for p in range(partitions):
                    pipe.zcard(keys.schedule(p))
                counts = await pipe.execute()
            return sum(counts) >= runs

        waiting = await _until(all_waiting, 60 + runs / 200)
        elapsed = time.perf_counter() - started
        out["all_waiting"] = waiting
        out["runs_started_per_s"] = round(runs / elapsed) if waiting else 0
        out["bytes_per_waiting_run"] = await _memory(redis, settings, triggered)
        # pay some while they wait
        paid = [(f"buyer-{i}", str(i)) for i in range(0, runs, max(1, runs // max(1, matches)))
                ][:matches]
        for first in range(0, len(paid), BATCH):
            await producer.publish_many([producer.envelope(user, BusinessEventReceived(
                name="order.paid", data={"order_id": order}))
                for user, order in paid[first:first + BATCH]])
        # until the last timeout is past and decided
        last_due = t0 + int(elapsed * 1000) + int(wait_s * 1000)
        settle = max(0.0, (last_due - now_ms()) / 1000) + 30 + runs / 1000

        async def all_ended() -> bool:
            """No timer left, and the workflows and projector groups have nothing left
            to read or acknowledge (so every decision is in the log)."""
            if now_ms() <= last_due:
                return False
            async with redis.pipeline(transaction=False) as pipe:
                for p in range(partitions):
                    pipe.zcard(keys.schedule(p))
                    pipe.xinfo_groups(keys.stream(p))
                replies = await pipe.execute()
            for timers, groups in zip(replies[0::2], replies[1::2], strict=True):
                if timers or any((g.get("lag") or 0) or g.get("pending") for g in groups
                                 if g.get("name") in (b"workflows", "workflows",
                                                      b"projector", "projector")):
                    return False
            return True

        out["all_ended"] = await _until(all_ended, settle)
        await asyncio.sleep(1.0)
        end = now_ms()
        log = await _log(redis, settings, t0 - 1000)
        _measure(log, out, set(user for user, _ in paid), runs)
        simulated = await Simulator(redis, settings).run("seed", flow(wait_s),
                                                         {1: flow(wait_s)}, t0 - 1000, end)
        out["simulate_eps"] = round(simulated.entries / simulated.seconds) \
            if simulated.seconds else 0
        out["simulate_entries"] = simulated.entries
        out["simulate_differing_runs"] = simulated.differing
        return out
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 15)
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()


def _measure(log: list[tuple[int, Any]], out: dict[str, Any], paid: set[str],
             runs: int) -> None:
    fired, matched = [], []
    business: dict[str, int] = {}  # user → position ms of the payment
    sends: Counter[tuple[str, str]] = Counter()
    run_user: dict[str, str] = {}
    for ms, env in log:
        p = env.payload
        if isinstance(p, WorkflowTriggered):
            run_user[env.id] = env.user
        elif isinstance(p, BusinessEventReceived):
            business[env.user] = ms
        elif isinstance(p, WorkflowStepDecided):
            if p.outcome == "sent":
                sends[(p.run_id, p.step)] += 1
            elif p.outcome == "matched" and env.user in business:
                matched.append(ms - business[env.user])
    waits: dict[str, int] = {
        env.payload.run_id: env.payload.until for _, env in log
        if isinstance(env.payload, WorkflowStepDecided) and env.payload.outcome == "waiting"
        and env.payload.until is not None}
    for ms, env in log:
        p = env.payload
        if isinstance(p, WorkflowStepDecided) and p.outcome == "timed_out" and p.run_id in waits:
            fired.append(ms - waits[p.run_id])
    out["step_fire_p50_ms"] = percentile(fired, 0.5)
    out["step_fire_p99_ms"] = percentile(fired, 0.99)
    out["step_fire_max_ms"] = max(fired) if fired else 0
    out["timed_out"] = len(fired)
    out["wait_match_p50_ms"] = percentile(matched, 0.5)
    out["wait_match_p99_ms"] = percentile(matched, 0.99)
    out["matched"] = len(matched)
    reminded = {run for (run, step), n in sends.items() if step == "remind"}
    expected_reminders = {run for run, user in run_user.items() if user not in paid}
    out["sends_exactly_once"] = (all(n == 1 for n in sends.values())
                                 and len(run_user) == runs
                                 and sum(1 for (_, s) in sends if s == "placed") == runs
                                 and reminded == expected_reminders)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--wait", type=float, default=8.0, help="the wait's timeout, seconds")
    parser.add_argument("--matches", type=int, default=200, help="runs paid during the wait")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="the issue's 100,000 runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.full:
        args.runs, args.wait = MAX_RUNS, max(args.wait, 60.0)
    if not 1 <= args.runs <= MAX_RUNS or not 0 < args.wait <= 600 or args.matches < 0:
        parser.error(f"--runs must be 1..{MAX_RUNS}, --wait in (0, 600], --matches >= 0")
    configure_logging("warning", "console")
    with scratch_server() as (url, _folder, _private):
        results = asyncio.run(bench(url, args.runs, args.wait, min(args.matches, args.runs),
                                    args.partitions))
    results["machine"] = machine()
    if args.json:
        sys.stdout.write(orjson.dumps(results).decode() + "\n")
        return 0
    for name, value in results.items():
        print(f"{name:>26}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
