"""``herald workflow put FILE | list | show KEY [--version N] | simulate KEY …``.

``put`` checks the definition (every error printed as ``path: message``, exit 2) and
registers it as a new version, or keeps it when it equals the latest
(consumers/workflows/registration.py); ``list`` prints every key and its latest
version; ``show`` prints one version's definition as JSON; ``simulate KEY (--version V
| --file F) --from T1 --to T2 [--json]`` replays that period's triggers through the
candidate, sending and writing nothing (consumers/workflows/simulate.py), and prints per
channel the candidate's sends against the live ones, and a sample of runs that differ.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import orjson

from herald.command import EXIT_FAILED, EXIT_OK, UsageError, command, connected
from herald.consumers.templates.render import Renderer
from herald.consumers.templates.store import TemplateStore
from herald.consumers.workflows import registration
from herald.consumers.workflows.definition import KEY_PATTERN, time_value_ms
from herald.consumers.workflows.simulate import Simulator
from herald.consumers.workflows.store import WorkflowStore
from herald.streams.producer import Producer
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    put = sub.add_parser("put", help="register a definition (a JSON file; - for stdin)")
    put.add_argument("file")
    put.add_argument("--key", default=None,
                     help="the workflow's key (default: the file's name without .json)")
    sub.add_parser("list", help="every workflow and its latest version")
    show = sub.add_parser("show", help="one version's definition")
    show.add_argument("key")
    show.add_argument("--version", type=int, default=None)
    sim = sub.add_parser("simulate", help="a candidate version against the recorded past")
    sim.add_argument("key")
    which = sim.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, help="a registered version")
    which.add_argument("--file", help="a draft definition (JSON), checked first")
    sim.add_argument("--from", dest="start", required=True, metavar="T1",
                     help="ISO-8601 time or epoch ms")
    sim.add_argument("--to", dest="end", required=True, metavar="T2",
                     help="ISO-8601 time or epoch ms")
    sim.add_argument("--json", action="store_true", help="the report as one JSON object")


def _definition(args: argparse.Namespace) -> tuple[str, Any]:
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    key = args.key or (Path(args.file).stem if args.file != "-" else "")
    if not key:
        raise UsageError("give --key when the definition comes from stdin")
    if not re.fullmatch(KEY_PATTERN, key):
        raise UsageError(f"the key {key!r} must be 1-64 of a-z 0-9 _ . - (use --key)")
    try:
        return key, orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{args.file} is not JSON: {exc}") from exc


@command
def main(args: argparse.Namespace) -> int:
    if args.action == "put":
        try:
            key, definition = _definition(args)
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
        return connected(lambda settings, redis: _put(key, definition, settings, redis))
    if args.action == "show":
        return connected(lambda settings, redis: _show(args, settings, redis))
    if args.action == "simulate":
        start, end = _when(args.start, "--from"), _when(args.end, "--to")
        if end < start:
            raise UsageError("--to is before --from")
        draft = None
        if args.file is not None:
            try:
                draft = orjson.loads(Path(args.file).read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise UsageError(f"cannot read {args.file}: {exc}") from exc
        return connected(lambda settings, redis: _simulate(args, draft, start, end, settings,
                                                           redis))
    return connected(_list)


async def _put(key: str, definition: Any, settings: Settings, redis: Any) -> int:
    try:
        done = await registration.register(Producer(redis, settings),
                                           WorkflowStore(redis, settings),
                                           TemplateStore(redis, settings), Renderer(), key,
                                           definition)
    except registration.DefinitionInvalid as exc:
        for path, message in exc.errors:
            print(f"{path}: {message}", file=sys.stderr)
        return 2
    except registration.VersionTaken as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(orjson.dumps({"key": key, "version": done.version, "created": done.created,
                        "position": done.appended.position if done.appended else None}
                       ).decode())
    return EXIT_OK


def _when(text: str, flag: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return time_value_ms(text)
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r}: {exc}") from exc


async def _simulate(args: argparse.Namespace, draft: Any, start: int, end: int,
                    settings: Settings, redis: Any) -> int:
    store = WorkflowStore(redis, settings)
    latest = await store.latest(args.key)
    if latest is None:
        print(f"herald: no workflow {args.key!r}", file=sys.stderr)
        return EXIT_FAILED
    live = {v: found.definition for v in range(1, latest + 1)
            if (found := await store.get(args.key, v)) is not None}
    if draft is None:
        if args.version not in live:
            print(f"herald: no version {args.version} of {args.key!r}", file=sys.stderr)
            return EXIT_FAILED
        candidate = live[args.version]
    else:
        try:
            await registration.check(draft, TemplateStore(redis, settings), Renderer())
        except registration.DefinitionInvalid as exc:
            for path, message in exc.errors:
                print(f"{path}: {message}", file=sys.stderr)
            return 2
        candidate = draft
    report = (await Simulator(redis, settings).run(args.key, candidate, live, start,
                                                    end)).as_dict()
    if args.json:
        print(orjson.dumps(report).decode())
        return EXIT_OK
    print(f"{report['runs']} runs of {args.key} from {args.start} to {args.end}, "
          f"{report['entries']} entries read in {report['seconds']} s")
    for channel, counts in report["channels"].items():
        print(f"  {channel:<8} candidate {counts['candidate']:>7}   live {counts['live']:>7}")
    print(f"{report['differing_runs']} runs differ" + (":" if report["sample"] else ""))
    for row in report["sample"]:
        print(f"  {row['run_id']} {row['user']}: live {','.join(row['live']) or '-'} → "
              f"candidate {','.join(row['candidate']) or '-'}")
    if report["trimmed_partitions"]:
        print(f"note: the period starts before the log kept in Redis on partitions "
              f"{report['trimmed_partitions']} (archived entries are not read)")
    return EXIT_OK


async def _list(settings: Settings, redis: Any) -> int:
    for row in await WorkflowStore(redis, settings).list():
        print(f"{row['id']}  v{row['latest']}")
    return EXIT_OK


async def _show(args: argparse.Namespace, settings: Settings, redis: Any) -> int:
    found = await WorkflowStore(redis, settings).get(args.key, args.version)
    if found is None:
        print(f"herald: no workflow {args.key!r}" + (f" version {args.version}"
                                                    if args.version else ""), file=sys.stderr)
        return EXIT_FAILED
    print(orjson.dumps({"key": found.id, "version": found.version, "latest": found.latest,
                        "definition": found.definition}, option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK
