"""Benchmark the producer against the raw XADD ceiling, in one run.

Starts a private server (append-only, everysec) in a temporary folder unless
``REDIS_URL`` is set (then works under a fresh prefix and deletes its keys), and
measures events/s for: raw pipelined XADD of pre-encoded events (the ceiling),
``publish`` one at a time, ``publish_many`` in batches of 100 and 1000 — every
event with its own idempotency key, so the dedupe path is always exercised.

Each figure is the median of ``--rounds`` interleaved rounds (default 3).

    python scripts/bench_publish.py [--events 100000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any

import orjson

from herald.benchproc import machine
from herald.streams import codec
from herald.streams.connection import connect
from herald.streams.events import Envelope, NotificationCreated
from herald.streams.log import configure_logging
from herald.streams.producer import Producer
from herald.streams.server import scratch_server
from herald.streams.settings import Settings

BODY = "x" * 120  # about 200-byte events


def make_envelopes(producer: Producer, n: int, tag: str) -> list[Envelope]:
    return [
        producer.envelope(
            f"user-{i % 10_000}",
            NotificationCreated(title=f"order {i}", body=BODY),
            idempotency_key=f"{tag}-{i}",
        )
        for i in range(n)
    ]


async def raw_xadd(redis: Any, producer: Producer, envs: list[Envelope], batch: int) -> float:
    prepared = [(producer.keys.stream(producer.partition(e.user)), codec.encode(e)) for e in envs]
    start = time.perf_counter()
    for i in range(0, len(prepared), batch):
        async with redis.pipeline(transaction=False) as pipe:
            for key, raw in prepared[i : i + batch]:
                pipe.xadd(key, {b"e": raw})
            await pipe.execute()
    return len(envs) / (time.perf_counter() - start)


async def publish_one(producer: Producer, envs: list[Envelope]) -> float:
    start = time.perf_counter()
    for env in envs:
        await producer.publish(env)
    return len(envs) / (time.perf_counter() - start)


async def publish_many(producer: Producer, envs: list[Envelope], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(envs), batch):
        await producer.publish_many(envs[i : i + batch])
    return len(envs) / (time.perf_counter() - start)


FIGURES = ("raw_xadd_eps", "publish_one_eps", "publish_many_100_eps", "publish_many_1000_eps")


async def one_round(redis: Any, producer: Producer, events: int, tag: str) -> dict[str, float]:
    """Every figure once, on fresh envelopes (a fresh idempotency key per event)."""
    # Envelope construction is part of a caller's work, not the append: built up front.
    one_n = max(1000, events // 10)
    return {
        "raw_xadd_eps": await raw_xadd(
            redis, producer, make_envelopes(producer, events, f"{tag}r"), 1000
        ),
        "publish_one_eps": await publish_one(producer, make_envelopes(producer, one_n, f"{tag}o")),
        "publish_many_100_eps": await publish_many(
            producer, make_envelopes(producer, events, f"{tag}h"), 100
        ),
        "publish_many_1000_eps": await publish_many(
            producer, make_envelopes(producer, events, f"{tag}k"), 1000
        ),
    }


async def run(events: int, rounds: int, url: str, prefix: str) -> dict[str, Any]:
    settings = Settings.from_env({}, redis_url=url, prefix=prefix, partitions=64)
    redis = connect(settings)
    producer = Producer(redis, settings)
    await producer.start()
    try:
        # Rounds interleave the figures, so a slow moment of a shared machine lands on
        # all of them; each figure is its median over the rounds.
        measured = []
        for n in range(rounds):
            measured.append(await one_round(redis, producer, events, f"{n}-"))
            print(f"round {n + 1}/{rounds} done", file=sys.stderr, flush=True)
        results: dict[str, Any] = {"events": events, "rounds": rounds}
        for name in FIGURES:
            results[name] = statistics.median(m[name] for m in measured)
            results[f"{name}_rounds"] = [round(m[name]) for m in measured]
        results["ratio_batched_to_raw"] = results["publish_many_1000_eps"] / results["raw_xadd_eps"]
        results["ratio_batched_100_to_raw"] = (
            results["publish_many_100_eps"] / results["raw_xadd_eps"]
        )
        return results
    finally:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1000 <= args.events <= 2_000_000:
        parser.error("--events must be between 1000 and 2000000")
    if not 1 <= args.rounds <= 15:
        parser.error("--rounds must be between 1 and 15")
    configure_logging("warning", "console")  # stdout carries only the results
    import uvloop

    with scratch_server() as (url, _folder, _private):
        results = uvloop.run(run(args.events, args.rounds, url, f"bench{uuid.uuid4().hex[:8]}"))
    results["machine"] = machine()
    if args.json:
        sys.stdout.write(orjson.dumps(results).decode() + "\n")
        return 0
    print(f"events per measurement: {args.events} (~200-byte events, 64 partitions, 10k users);"
          f" median of {args.rounds} rounds")
    for name in FIGURES:
        ratio = results[name] / results["raw_xadd_eps"]
        print(f"{name:24s} {results[name]:>12,.0f} events/s   {ratio:5.2f} × raw"
              f"   rounds {results[name + '_rounds']}")
    print(f"ratio_batched_to_raw     {results['ratio_batched_to_raw']:.2f} (target ≥ 0.70)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
