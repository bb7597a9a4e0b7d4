"""``herald snapshot [--partition N] [--no-trim]``: snapshot now, then archive and trim.

For each partition (or one): take a snapshot at its live checkpoint when anything is
newer than its latest one (consumers/retention/snapshotter.py), then copy the log
below it to archive segments and trim the stream (unless ``--no-trim``), as the
``retention`` role does when ``HERALD_SNAPSHOT_EVERY`` says so. Safe beside a running
role. Prints one line per partition, then the totals.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from herald.command import EXIT_OK, UsageError, command, connected, load_settings
from herald.consumers.retention.role import Retention
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partition", type=int, default=None, help="only this partition")
    parser.add_argument("--no-trim", action="store_true",
                        help="only the snapshot: leave the stream as it is")


@command
def main(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.partition is not None and not 0 <= args.partition < settings.partitions:
        raise UsageError(f"--partition must be from 0 to {settings.partitions - 1}")
    parts = range(settings.partitions) if args.partition is None else [args.partition]
    return connected(lambda settings, redis: _snapshot(list(parts), not args.no_trim,
                                                       settings, redis), settings)


async def _snapshot(parts: list[int], trim: bool, settings: Settings, redis: Any) -> int:
    retention = Retention(settings, redis, consumer="herald-snapshot", partitions=parts)
    started = time.monotonic()
    taken = archived = 0
    for p in parts:
        report = await retention.step(p, force=True, trim=trim)
        taken += report.snapshot is not None
        entries = report.archived.entries if report.archived else 0
        archived += entries
        line = f"partition {p}: "
        line += f"snapshot at {report.snapshot}" if report.snapshot else "no new snapshot"
        if trim:
            trimmed = report.archived.trimmed_to if report.archived else None
            line += f"; {entries} entries archived; stream trimmed to {trimmed or '-'}"
        if report.blocked_by:
            line += f"; trimming held back by group {report.blocked_by!r}"
        print(line)
    print(f"{taken} snapshots, {archived} entries archived in "
          f"{time.monotonic() - started:.2f}s")
    return EXIT_OK
