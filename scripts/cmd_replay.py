"""``herald replay [--verify] [--partition N] [--from-start]``: rebuild the projection.

Without ``--verify``: rebuild into a fresh namespace and switch to it (see
consumers/replay/rebuild.py; resumable: run it again after an interruption). With
``--verify``: rebuild into a scratch namespace and compare with the live projection,
printing each difference; exit 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from herald.command import EXIT_FAILED, EXIT_OK, UsageError, command, connected, load_settings
from herald.consumers.replay.builder import Builder
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verify", action="store_true",
                        help="compare a scratch rebuild with the live projection; exit 1 on any "
                             "difference")
    parser.add_argument("--partition", type=int, default=None, help="only this partition")
    parser.add_argument("--from-start", action="store_true",
                        help="fold every archive segment and the stream from the first entry "
                             "instead of starting from each partition's newest snapshot")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


@command
def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.partition is not None and not 0 <= args.partition < settings.partitions:
        raise UsageError(f"--partition must be from 0 to {settings.partitions - 1}")
    parts = None if args.partition is None else [args.partition]
    work = _verify if args.verify else _replay
    return connected(lambda settings, redis: work(redis, settings, parts, args), settings,
                     tune_collector=True)  # a long decode loop: see streams/process.py


def _bar(total: int, args: argparse.Namespace, what: str) -> Any:
    return tqdm(total=total, unit="ev", unit_scale=True, desc=what, file=sys.stderr,
                disable=args.quiet, dynamic_ncols=True)


async def _replay(redis: Any, settings: Any, parts: list[int] | None,
                  args: argparse.Namespace) -> int:
    total = await Builder(redis, settings).log_length(parts or range(settings.partitions))
    with _bar(total, args, "replay") as bar:
        report = await Replay(redis, settings, progress=bar.update,
                              from_start=args.from_start).run(parts)
    start = "from the start" if args.from_start else \
        f"from {report.snapshots} snapshots and the log after them"
    print(f"replayed {report.stats.entries} events ({start}) in {report.rebuild_seconds:.2f}s "
          f"({report.events_per_s:,.0f} events/s) into namespace {report.ns}"
          f"{' (resumed)' if report.resumed else ''}; {report.stats.skipped} skipped "
          f"(dead letters); {report.deleted_keys} keys of the old namespace deleted; "
          f"{report.seconds:.2f}s in all")
    for where, reason in report.stats.reasons.items():
        print(f"  skipped {where}: {reason}")
    return EXIT_OK


async def _verify(redis: Any, settings: Any, parts: list[int] | None,
                  args: argparse.Namespace) -> int:
    total = await Builder(redis, settings).log_length(parts or range(settings.partitions))
    with _bar(total, args, "verify") as bar:
        report = await Verifier(redis, settings, progress=bar.update,
                                from_start=args.from_start).run(parts)
    for line in report.differences:
        print(line)
    if report.identical:
        print(f"identical: {report.compared_keys} keys compared, {report.stats.entries} "
              "events replayed")
        return EXIT_OK
    print(f"{len(report.differences)} differences", file=sys.stderr)
    return EXIT_FAILED
