"""``herald status [--json]``: per partition owner, checkpoint, lag, pending, dead letters.

``herald status --notification ID [--json]``: one notification and its per-channel
delivery state, attempts, last error and times (consumers/delivery/queries.py); exit
1 when nothing is known of it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from herald.command import EXIT_FAILED, EXIT_OK, command, connected
from herald.consumers.delivery.queries import DeliveryQueries
from herald.consumers.overview import collect
from herald.consumers.projection.applier import GROUP
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.add_argument("--notification", metavar="ID", default=None,
                        help="show one notification's delivery status instead")


def render(doc: dict[str, Any]) -> str:
    """The human-readable table."""
    lines = [f"{'part':>4} {'length':>9} {'checkpoint':>22} {'lag':>7} {'pending':>7} "
             f"{'dlq':>5} {'sched':>6}  owner"]
    for row in doc["partitions"]:
        proj = next((g for g in row["groups"] if g["name"] == GROUP), None)
        lag = "-" if proj is None or proj["lag"] is None else str(proj["lag"])
        pending = "-" if proj is None else str(proj["pending"])
        owner = "(no group)" if proj is None else proj["owner"] or "(nobody)"
        lines.append(f"{row['partition']:>4} {row['length']:>9} {row['checkpoint'] or '-':>22} "
                     f"{lag:>7} {pending:>7} {row['dead_letters']:>5} "
                     f"{row['scheduled']:>6}  {owner}")
    others: dict[str, list[dict[str, Any]]] = {}
    for row in doc["partitions"]:
        for g in row["groups"]:
            if g["name"] != GROUP:
                others.setdefault(g["name"], []).append(g)
    for name, groups in sorted(others.items()):
        lines.append(f"group {name}: lag {sum(g['lag'] or 0 for g in groups)}, pending "
                     f"{sum(g['pending'] for g in groups)}, partitions without owner "
                     f"{sum(1 for g in groups if g['owner'] is None)}")
    for row in doc["partitions"]:
        kept = row["retention"]
        if kept["blocked_by"]:
            lines.append(f"partition {row['partition']}: trimming held back at "
                         f"{kept['blocked_at']} by group {kept['blocked_by']!r} (it has not "
                         "read or acked past it; nothing is lost, the stream just keeps it)")
    t = doc["totals"]
    lines.append(f"total: {t['length']} entries, projector lag {t['projector_lag']}, pending "
                 f"{t['projector_pending']}, {t['dead_letters']} dead letters, "
                 f"{t['scheduled']} scheduled, {t['digests_open']} open digests, "
                 f"{t['projector_unowned']} partitions without a projector, "
                 f"{t['trim_blocked']} with trimming held back")
    return "\n".join(lines)


def render_notification(doc: dict[str, Any]) -> str:
    """One notification's status, a line per channel."""
    lines = [f"{doc['id']}  user {doc['user']}  category {doc['category']}  "
             f"created {doc['created_at'] or '-'}  expires {doc['expires_at'] or '-'}",
             f"title: {doc['title']}"]
    if doc.get("scheduled_for"):
        lines.append(f"scheduled for {doc['scheduled_for']}")
    for name, ch in doc["channels"].items():
        parts = [f"{name:<8} {ch['state']:<9}"]
        if "attempts" in ch:
            parts.append(f"attempts {ch['attempts']}")
        for label in ("sent_at", "next_attempt_at", "updated_at", "read_at"):
            if ch.get(label):
                parts.append(f"{label.replace('_at', '')} {ch[label]}")
        if ch.get("last_error"):
            parts.append(f"last error: {ch['last_error']}")
        lines.append("  ".join(parts))
    return "\n".join(lines)


async def _notification(settings: Settings, redis: Any, args: argparse.Namespace) -> int:
    doc = await DeliveryQueries(redis, settings).notification(args.notification)
    if doc is None:
        print(f"herald: no notification {args.notification!r} (unknown, or its status "
              "expired)", file=sys.stderr)
        return EXIT_FAILED
    print(orjson.dumps(doc).decode() if args.json else render_notification(doc))
    return EXIT_OK


@command
def main(args: argparse.Namespace) -> int:
    return connected(lambda settings, redis: _status(args, settings, redis))


async def _status(args: argparse.Namespace, settings: Settings, redis: Any) -> int:
    if args.notification is not None:
        return await _notification(settings, redis, args)
    doc = await collect(redis, settings)
    if args.json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        print(render(doc))
    return EXIT_OK
