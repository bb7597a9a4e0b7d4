"""One user's inbox as it was at a position or a time, rebuilt from snapshot, archive
and log (``GET /v1/users/{user}/inbox?as_of=``, ``herald inbox USER --as-of``).

The user's part of the newest snapshot of their partition at or before the position
(their sets and the items those sets name: consumers/retention/image.py ``of_user``)
is loaded into a private namespace, the user's entries after it up to the position
are folded on top with the projector's own Lua (consumers/replay/builder.py, archive
segments read when the stream was trimmed), the page is read from it like a live
page, and the namespace is deleted. Without a snapshot the fold starts at the first
entry of the archive. Cost: the partition's entries between the snapshot and the
position are read and decoded; only the user's are applied.

Positions: a stream position, or an ISO-8601 time (everything appended up to and
including that millisecond). A time in the future is now. Content is opened with the
user's data key: an erased user's rebuilt items have empty title, body and data.

Failure modes: ValidationError for a bad position or time; archive errors (a missing
or corrupt segment, naming it) and Redis errors propagate; the private namespace is
deleted in every case (or, after a crash, by the retention role).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from herald.consumers.errors import RetentionError
from herald.consumers.projection.queries import InboxPage, InboxQueries
from herald.consumers.replay.builder import Builder
from herald.consumers.retention import image
from herald.consumers.retention.snapshots import SnapshotStore
from herald.consumers.retention.snapshotter import SCRATCH_PREFIX, SENTINEL, drop_scratch
from herald.streams import positions
from herald.streams.archive import open_storage
from herald.streams.errors import ValidationError
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings


def position_of(value: str, now_ms: int | None = None) -> str:
    """The last position at or before ``value`` (a position, or an ISO-8601 time: UTC
    when it names no zone); ValidationError naming ``as_of`` otherwise."""
    text = value.strip()
    if positions.is_position(text):
        return text
    try:
        moment = datetime.fromisoformat(text.upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValidationError("as_of", "is neither a log position (ms-seq) nor an "
                              "ISO-8601 time") from exc
    if ms < 0:
        return "0-0"  # before anything was logged: an empty inbox
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{min(ms, now)}-{positions.MAX_SEQ}"


class InboxAsOf:
    """Rebuilds single inboxes as of a position; one per process and client."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.snapshots = SnapshotStore(open_storage(settings.archive_location),
                                       settings.partitions)
        self.builder = Builder(redis, settings)
        self.queries = InboxQueries(redis, settings)

    async def page(self, user: str, as_of: str, *, status: str = "all", limit: int = 50,
                   cursor: str | None = None, after: str | None = None
                   ) -> tuple[InboxPage, str]:
        """The page of ``user``'s inbox as of ``as_of``, and the position it stands for."""
        at = position_of(as_of)
        p = partition_for(user, self.settings.partitions)
        ns = f"{SCRATCH_PREFIX}q{int(time.time() * 1000):x}{secrets.token_hex(3)}"
        registry = self.keys.ns_registry(p, ns)
        await self.redis.sadd(registry, SENTINEL)  # gone if retention drops the copy
        try:
            found = await self.snapshots.latest(p, at)
            if found is not None:
                records = image.of_user(await self.snapshots.read(found), user)
                await image.load(self.redis, self.keys, p, ns, records, registry=registry)
            await self.builder.build(p, ns, until=at, track=True, only_user=user)
            page = await self.queries.page(user, status=status, limit=limit, cursor=cursor,
                                           after=after, ns=ns)
            if not await self.redis.sismember(registry, SENTINEL):
                raise RetentionError("the partition's retention moved to another worker "
                                     "during the query (its copy was dropped): ask again")
        finally:
            await drop_scratch(self.redis, registry)
        return page, at
