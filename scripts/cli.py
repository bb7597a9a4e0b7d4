"""``herald`` — the command line (see API.md). Thin: parse, then call the room's code.

Each subcommand lives in ``scripts/cmd_<name>.py`` with ``configure(parser)`` and
``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from herald.command import EXIT_USAGE

COMMANDS: dict[str, str] = {
    "run": "all-in-one: server (unless REDIS_URL), API, projector, scheduler, delivery",
    "api": "the HTTP API alone",
    "worker": "consumer processes (projector, scheduler, delivery channels)",
    "publish": "append one notification",
    "inbox": "a user's inbox, now or --as-of a position or time",
    "replay": "rebuild all derived state from the log (or --verify it)",
    "snapshot": "snapshot the projection now, then archive and trim the log below it",
    "status": "partitions, groups, lag, pending, dead letters, schedule depth",
    "dlq": "list, retry or drop dead letters",
    "erase": "forget a user: their content unreadable everywhere, their state gone",
    "token": "mint a user token (development and tests)",
    "secrets": "re-wrap every data key with the newest master key (rotate), or count them",
    "dev-cluster": "a local Redis Cluster (3 primaries, 3 replicas) for development",
    "workflow": "workflow definitions: put FILE, list, show KEY",
    "explain": "why a workflow run did what it did (a run or notification id)",
    "config": "the effective configuration (secrets masked) and where each value came from",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald", description="Herald: an event-sourced notification broker on Redis Streams."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        cmd = sub.add_parser(name, help=summary, description=summary)
        try:
            module = importlib.import_module(f"herald.cmd_{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name != f"herald.cmd_{name.replace('-', '_')}":
                raise
            cmd.set_defaults(handler=None)
            continue
        module.configure(cmd)
        cmd.set_defaults(handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.handler is None:
        print(f"herald: '{args.command}' is not available yet", file=sys.stderr)
        return EXIT_USAGE
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
