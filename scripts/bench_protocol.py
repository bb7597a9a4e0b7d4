"""What the protocol's consumer-side checks cost: reading an entry with every rule
(streams/entries.py) against decoding it alone, and the projector's apply script with
its record of event ids against the same script without it; plus the record's memory.

``python scripts/bench_protocol.py [--events 100000] [--rounds 3] [--json]``: a
private server (streams/server.py ``scratch_server``), ~200-byte created events over
64 partitions and 10,000 users, published by the producer (sealing off); the apply
figures are bare pipelined script calls on batches built before the clock starts
(like bench_project.py's ceiling), with and without event ids in the records (an
empty id skips the check), in alternating rounds, each pass after an append-only file
rewrite, medians reported; the script's server time per event comes from
``INFO commandstats``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import time
import uuid
from typing import Any

import orjson
from redis.exceptions import ResponseError

from herald.benchproc import machine
from herald.consumers.group.handler import entries_of
from herald.consumers.projection.applier import BUILD, Applier, Preparer
from herald.consumers.replay.rebuild import delete_namespace
from herald.streams import codec
from herald.streams.connection import Batch, connect
from herald.streams.entries import EntryReader
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from herald.streams.log import configure_logging
from herald.streams.producer import Producer
from herald.streams.server import scratch_server
from herald.streams.settings import Settings

PARTITIONS, USERS, BATCH, PIPELINE = 64, 10_000, 250, 8
TIMEOUT_S = 120.0


def python_costs(raws: list[tuple[int, bytes]], settings: Settings, rounds: int
                 ) -> tuple[float, float]:
    """µs per entry: codec.decode alone, and EntryReader.read (every rule)."""
    reader = EntryReader(settings)
    decode_us, read_us = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _p, raw in raws:
            codec.decode(raw)
        decode_us.append((time.perf_counter() - start) / len(raws) * 1e6)
        start = time.perf_counter()
        for p, raw in raws:
            reader.read(raw, p)
        read_us.append((time.perf_counter() - start) / len(raws) * 1e6)
    return statistics.median(decode_us), statistics.median(read_us)


async def compact(redis: Any) -> None:
    """Rewrite the append-only file and wait for it (untimed), so each timed pass pays
    for the rewrites its own writes trigger, as bench_project.py does."""
    with contextlib.suppress(ResponseError):  # one already running: wait for it
        await redis.bgrewriteaof()
    deadline = time.perf_counter() + TIMEOUT_S
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        persistence = await redis.info("persistence")
        if not (persistence.get("aof_rewrite_in_progress")
                or persistence.get("aof_rewrite_scheduled")):
            return


async def run(events: int, rounds: int, url: str) -> dict[str, Any]:
    settings = Settings.from_env({}, redis_url=url, prefix=f"bench{uuid.uuid4().hex[:8]}",
                                 partitions=PARTITIONS, seal=False, log_level="warning")
    redis = connect(settings)
    keys = Keys(settings.prefix)
    try:
        producer = Producer(redis, settings)
        rng = random.Random(7)
        for start in range(0, events, 1000):
            await producer.publish_many([producer.envelope(
                f"user-{rng.randrange(USERS)}", NotificationCreated(
                    title=f"Order {n:08d} shipped", body="x" * 120, category="orders",
                    data={"order": n})) for n in range(start, min(events, start + 1000))])
        preparer, applier = Preparer(settings), Applier(redis, settings)
        raws: list[tuple[int, bytes]] = []
        with_ids, without = [], []
        for p in range(PARTITIONS):
            read = Batch(redis)
            read.execute_command("XRANGE", keys.stream(p), "-", "+")
            rows = (await read.execute())[0]
            for i in range(0, len(rows), BATCH):
                chunk = entries_of(rows[i:i + BATCH])
                raws += [(p, e.raw) for e in chunk if e.raw is not None]
                batch = preparer.prepare(p, "bench", chunk)
                with_ids.append((p, batch.records))
                without.append((p, [[*r[:3], "", *r[4:]] for r in batch.records]))
        decode_us, read_us = python_costs(raws, settings, rounds)
        await applier.load()

        async def apply(calls: list[tuple[int, list[Any]]], ns: str) -> tuple[float, float]:
            """(events/s, server µs per event from INFO commandstats) of one pass."""
            prepared = []
            for p, records in calls:
                batch = preparer.prepare(p, ns, [])
                batch.records, batch.target = records, records[-1][0]
                prepared.append(applier.call_args(p, ns, batch, mode=BUILD))
            await compact(redis)
            await redis.config_resetstat()
            start = time.perf_counter()
            for i in range(0, len(prepared), PIPELINE):
                async with redis.pipeline(transaction=False) as pipe:
                    for call_keys, args in prepared[i:i + PIPELINE]:
                        applier.queue(pipe, call_keys, args)
                    await pipe.execute()
                if time.perf_counter() - start > TIMEOUT_S:
                    raise TimeoutError("an apply round took too long")
            eps = len(raws) / (time.perf_counter() - start)
            stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
            return eps, float(stats.get("usec", 0)) / len(raws)

        runs: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
        memory = 0
        for n in range(rounds):
            order = [("with", with_ids), ("without", without)]
            for name, calls in order if n % 2 == 0 else order[::-1]:
                ns = f"b{name[0]}{n}"
                runs[name].append(await apply(calls, ns))
                if name == "with" and n == 0:
                    async for key in redis.scan_iter(match=f"{keys.prefix}:*:{ns}:seen:*"):
                        memory += int(await redis.memory_usage(key) or 0)
                await delete_namespace(redis, keys, ns, list(range(PARTITIONS)))

        def median(name: str, i: int) -> float:
            return statistics.median(run[i] for run in runs[name])

        return {
            "events": len(raws), "rounds": rounds,
            "decode_us": round(decode_us, 2), "read_entry_us": round(read_us, 2),
            "apply_with_ids_eps": round(median("with", 0)),
            "apply_without_ids_eps": round(median("without", 0)),
            "server_us_with_ids": round(median("with", 1), 2),
            "server_us_without_ids": round(median("without", 1), 2),
            "server_us_rounds": [[round(a[1], 2), round(b[1], 2)]
                                 for a, b in zip(runs["with"], runs["without"], strict=True)],
            "ratio_with_to_without": round(median("with", 0) / median("without", 0), 3),
            "seen_bytes_per_event": round(memory / len(raws), 1),
        }
    finally:
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1000 <= args.events <= 1_000_000 or not 1 <= args.rounds <= 9:
        parser.error("--events 1000..1000000, --rounds 1..9")
    configure_logging("warning", "console")
    import uvloop

    with scratch_server() as (url, _folder, _private):
        results = uvloop.run(asyncio.wait_for(run(args.events, args.rounds, url), 600))
    results["machine"] = machine()
    if args.json:
        sys.stdout.write(orjson.dumps(results).decode() + "\n")
        return 0
    for name, value in results.items():
        print(f"{name:24s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
