"""``python -m tests.chaos.run [--quick] [--only NAME ...] [--json]``: the chaos suite.

Runs each scenario of tests/chaos/scenarios.py against real processes and prints one
line per scenario (scenario, events, faults, acked-lost, duplicated in inboxes and
in channel sends, recovery seconds, ``replay --verify``); with ``--json`` one JSON
object last. Exit code 1 when any scenario fails. ``make chaos`` runs everything;
``make test`` runs ``--quick`` (smaller loads and fewer faults, the same checks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

import orjson

from herald.streams.log import configure_logging
from tests.chaos.harness import Result
from tests.chaos.scenarios import SCENARIOS


async def run(names: list[str], quick: bool, seed: int) -> list[Result]:
    results = []
    for name in names:
        rnd = random.Random(f"{seed}-{name}")
        started = time.monotonic()
        try:
            result = await SCENARIOS[name](quick, rnd)
        except Exception as exc:  # a scenario that breaks is a failure, reported as one
            result = Result(name)
            result.failures.append(f"the scenario broke: {exc!r}")
        result.seconds = time.monotonic() - started
        print(result.line(), flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller loads (make test)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="these only")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "7")))
    parser.add_argument("--json", action="store_true", help="one JSON object last")
    args = parser.parse_args(argv)
    configure_logging("warning", "console")
    names = args.only or list(SCENARIOS)
    mode = "quick" if args.quick else "full"
    print(f"chaos ({mode}, seed {args.seed}, {os.cpu_count()} cpus): {', '.join(names)}",
          flush=True)
    started = time.monotonic()
    results = asyncio.run(run(names, args.quick, args.seed))
    failed = [r.scenario for r in results if not r.ok]
    print(f"chaos: {len(results) - len(failed)} passed, {len(failed)} failed in "
          f"{time.monotonic() - started:.0f}s", flush=True)
    if args.json:
        print(orjson.dumps({"mode": mode, "seed": args.seed,
                            "scenarios": [r.document() for r in results]}).decode())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
