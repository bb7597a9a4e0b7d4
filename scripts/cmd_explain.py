"""``herald explain RUN_OR_NOTIFICATION_ID [--json]``: why a workflow run did what it did.

Prints the run's timeline from the log alone (consumers/workflows/explain.py): each
step, when, what it did and why — the condition, its value and the log position it was
decided as of. A notification a run sent explains its run. Exit 1 when the id is
neither.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from herald.command import EXIT_FAILED, EXIT_OK, command, connected
from herald.consumers.workflows.explain import Explainer, why
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="a run id, or the id of a notification a run sent")
    parser.add_argument("--json", action="store_true", help="the run as the HTTP API answers it")


@command
def main(args: argparse.Namespace) -> int:
    return connected(lambda settings, redis: _explain(args, settings, redis))


async def _explain(args: argparse.Namespace, settings: Settings, redis: Any) -> int:
    doc = await Explainer(redis, settings).explain(args.id)
    if doc is None:
        print(f"herald: {args.id!r} is not a workflow run nor a notification a run sent",
              file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(orjson.dumps(doc).decode())
        return EXIT_OK
    print(f"run {doc['run_id']} of {doc['workflow']} v{doc['version']} for {doc['user']}: "
          f"{doc['status']}")
    for line in doc["timeline"]:
        print(why(line))
        if "inputs" in line:
            print(" " * 48 + "inputs " + orjson.dumps(line["inputs"]).decode())
    if doc["missing"]:
        print(f"({doc['missing']} events no longer in Redis: see the archive)")
    return EXIT_OK
