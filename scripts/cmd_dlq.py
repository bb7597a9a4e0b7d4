"""``herald dlq list|retry|drop``: the dead letters of every group.

A letter is named ``PARTITION:ID`` (as ``list`` prints it). ``retry`` offers letters
to their group's handler again (the projector applies them at their own position)
and deletes those that now succeed; ``drop`` deletes them. Both need ``--id`` (one
or more) or ``--all`` (within ``--partition`` / ``--group`` when given).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from herald.command import EXIT_FAILED, EXIT_OK, UsageError, command, connected, load_settings
from herald.consumers.group.dead_letters import DeadLetters, Letter
from herald.consumers.group.handler import Outcome
from herald.consumers.group.runtime import consumer_name
from herald.consumers.roles import DLQ_HANDLERS
from herald.streams.settings import Settings

LIST_MAX = 10_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "retry", "drop"))
    parser.add_argument("--partition", type=int, default=None)
    parser.add_argument("--group", default=None, help="only letters of this group")
    parser.add_argument("--id", action="append", default=[], metavar="PARTITION:ID",
                        help="a letter (repeatable)")
    parser.add_argument("--all", action="store_true", help="every selected letter")
    parser.add_argument("--limit", type=int, default=100, help="list at most this many")
    parser.add_argument("--json", action="store_true", help="JSON lines")


def _ids(values: list[str]) -> set[tuple[int, str]]:
    out = set()
    for value in values:
        part, _, letter = value.partition(":")
        if not part.isdigit() or not letter:
            raise UsageError(f"--id {value!r}: use PARTITION:ID as `herald dlq list` prints it")
        out.add((int(part), letter))
    return out


async def _select(dlq: DeadLetters, settings: Any, args: argparse.Namespace) -> list[Letter]:
    parts = list(range(settings.partitions)) if args.partition is None else [args.partition]
    limit = args.limit if args.action == "list" else LIST_MAX
    letters = await dlq.letters(parts, group=args.group, limit=limit)
    if args.action == "list" or args.all:
        return letters
    wanted = _ids(args.id)
    chosen = [x for x in letters if (x.partition, x.id) in wanted]
    missing = wanted - {(x.partition, x.id) for x in chosen}
    if missing:
        raise UsageError(f"no such dead letter: {sorted(missing)[0][0]}:{sorted(missing)[0][1]}")
    return chosen


@command
def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action != "list" and not args.all and not args.id:
        raise UsageError(f"dlq {args.action} needs --id PARTITION:ID or --all")
    if args.partition is not None and not 0 <= args.partition < settings.partitions:
        raise UsageError(f"--partition must be from 0 to {settings.partitions - 1}")
    return connected(lambda settings, redis: _dlq(args, settings, redis), settings)


async def _dlq(args: argparse.Namespace, settings: Settings, redis: Any) -> int:
    dlq = DeadLetters(redis, settings)
    letters = await _select(dlq, settings, args)
    if args.action == "list":
        _print(letters, args.json)
        return EXIT_OK
    if args.action == "drop":
        print(f"dropped {await dlq.drop(letters)} dead letters")
        return EXIT_OK
    return await _retry(dlq, letters, settings, redis)


async def _retry(dlq: DeadLetters, letters: list[Letter], settings: Any, redis: Any) -> int:
    unknown = sorted({x.group for x in letters} - set(DLQ_HANDLERS))
    if unknown:
        raise UsageError(f"no handler for group {unknown[0]!r} in this build; known: "
                         f"{', '.join(sorted(DLQ_HANDLERS))}")
    failed = 0
    for group in sorted({x.group for x in letters}):
        handler = DLQ_HANDLERS[group](settings, redis, f"dlq:{consumer_name()}")
        mine = [x for x in letters if x.group == group]
        try:
            outcomes: list[Outcome] = await dlq.retry(mine, handler)
        finally:
            close = getattr(handler, "aclose", None)  # delivery handlers own HTTP sessions
            if close is not None:
                await close()
        for letter, outcome in zip(mine, outcomes, strict=True):
            failed += outcome is not None
            result = "ok" if outcome is None else f"failed again: {outcome.reason}"
            print(f"{letter.partition}:{letter.id} {group} {letter.position}: {result}")
    print(f"retried {len(letters)} dead letters, {failed} failed again")
    return EXIT_FAILED if failed else EXIT_OK


def _print(letters: list[Letter], as_json: bool) -> None:
    for x in letters:
        if as_json:
            sys.stdout.write(orjson.dumps(x.as_dict()).decode() + "\n")
        else:
            print(f"{x.partition}:{x.id}  {x.group}  {x.position}  {x.reason}")
    if not as_json:
        print(f"{len(letters)} dead letters")
