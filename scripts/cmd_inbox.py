"""``herald inbox USER [--as-of T] [--status S] [--limit N] [--json]``: a user's inbox.

Without ``--as-of``: the inbox as it is now (the live projection). With it: exactly as
it was at that log position (ms-seq) or ISO-8601 time, rebuilt from the newest
snapshot before it, the archive and the log (consumers/retention/as_of.py). Prints one
line per item, newest first (``--json``: the page as the HTTP API answers it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from herald.command import EXIT_OK, UsageError, command, connected, scoped_user
from herald.consumers.projection.queries import MAX_LIMIT, STATUSES, InboxQueries
from herald.consumers.retention.as_of import InboxAsOf
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user")
    parser.add_argument("--as-of", default=None, metavar="T",
                        help="a log position (ms-seq) or an ISO-8601 time")
    parser.add_argument("--status", default="all", choices=STATUSES)
    parser.add_argument("--limit", type=int, default=50, help=f"items (1-{MAX_LIMIT})")
    parser.add_argument("--json", action="store_true", help="the page as one JSON document")
    parser.add_argument("--tenant", default="", help="the user's tenant (default: none)")


@command
def main(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be from 1 to {MAX_LIMIT}")
    return connected(lambda settings, redis: _inbox(args, settings, redis))


async def _inbox(args: argparse.Namespace, settings: Settings, redis: Any) -> int:
    doc: dict[str, Any] = {}
    args.user = scoped_user(args.user, args.tenant)
    if args.as_of is None:
        page = await InboxQueries(redis, settings).page(args.user, status=args.status,
                                                       limit=args.limit)
    else:
        page, doc["as_of"] = await InboxAsOf(redis, settings).page(
            args.user, args.as_of, status=args.status, limit=args.limit)
    doc.update(items=page.items, next_cursor=page.next_cursor, unread_count=page.unread_count)
    if args.json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return EXIT_OK
    when = f" as of {doc['as_of']}" if "as_of" in doc else ""
    print(f"{args.user}{when}: {page.unread_count} unread, {len(page.items)} shown")
    for item in page.items:
        state = "archived" if item["archived"] else "read" if item["read_at"] else "unread"
        print(f"{item['position']:>22}  {state:<8}  {item['created_at']}  {item['title']}")
    return EXIT_OK
