"""Inbox queries the API answers from: pages, unread count, one item, read-your-writes.

Every read is one atomic step (a Lua script or a MULTI) that also checks the
partition's view pointer, so a reader never mixes two namespaces while
``herald replay`` switches one.

Filters (``status``): ``unread`` and ``read`` leave archived items out;
``archived`` is only archived items (read or not); ``all`` is every item not
deleted (archived included). ``unread_count`` counts the ``unread`` filter.

Order and cursors: newest first by log position (exact, see streams/positions.py).
``next_cursor`` is an opaque string for the next, older page (None on the last
page); ``after`` is a position: only items strictly newer than it. Items evicted by
the inbox cap or deleted simply stop appearing; a cursor stays valid.

An item (JSON-ready): ``id``, ``category``, ``title``, ``body``, ``data``,
``created_at`` (ISO-8601 UTC), ``read_at`` (ISO-8601 or None), ``archived`` (bool),
``position`` (stream id). Items whose content is sealed (streams/sealing.py) are
opened with the user's data key; when that key is gone (erased) their title, body
and data are empty.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.views import NS_RETRIES, Views
from herald.streams import codec, positions
from herald.streams.connection import text
from herald.streams.errors import ValidationError
from herald.streams.ids import is_id, partition_of
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.keystore import KeyStore
from herald.streams.partitions import partition_for
from herald.streams.scripts import register
from herald.streams.sealing import open_blob
from herald.streams.settings import Settings

STATUSES = ("unread", "read", "archived", "all", "snoozed")
MAX_LIMIT = 100
WAIT_POLL_FIRST_S = 0.002  # wait_for polls the checkpoint, doubling up to the max
WAIT_POLL_MAX_S = 0.05


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    unread_count: int
    unseen_count: int = 0


def iso(ms: Any) -> str | None:
    """Milliseconds (bytes/str/int) → ISO-8601 UTC with milliseconds, or None."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _item(nid: str, fields: list[Any]) -> tuple[dict[str, Any], bytes | None] | None:
    """The item of a hash's :data:`ITEM_FIELDS` (and the seen flag), and its sealed blob
    (None: in clear)."""
    category, title, body, data, created, padded, read_at, archived, sealed = fields[:9]
    snoozed, expires = (fields[9], fields[10]) if len(fields) > 10 else (None, None)
    seen = len(fields) > 11 and fields[11] in (b"1", "1", 1)
    if padded is None:
        return None  # gone between two reads of a non-atomic caller; never inside a script
    return {
        "id": nid,
        "category": text(category),
        "title": text(title),
        "body": text(body),
        "data": codec.unpack_value(data) if data else {},
        "created_at": iso(created),
        "read_at": iso(read_at),
        "archived": archived == b"1",
        "position": positions.unpadded(text(padded)),
        "seen": seen or read_at is not None,
        "snoozed_until": iso(snoozed),
        "expires_at": iso(expires),
    }, sealed


ITEM_FIELDS = ("c", "t", "b", "d", "ts", "p", "r", "a", "s", "z", "x")
CONTENT = ("title", "body", "data")


async def open_items(data_keys: KeyStore, user: str,
                     found: list[tuple[dict[str, Any], bytes | None]]) -> list[dict[str, Any]]:
    """The items with their sealed content opened (empty when the user was erased)."""
    out = []
    for item, sealed in found:
        if sealed:
            fields = await open_blob(data_keys, user, sealed) or {}
            item.update({name: fields.get(name, {} if name == "data" else "")
                         for name in CONTENT})
        out.append(item)
    return out


class InboxQueries:
    """Read-only access to the live projection; one instance per process."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.views = Views(redis, settings)
        self.data_keys = KeyStore(redis, settings)
        self._page = register(redis, __file__, "inbox_page")
        self._counts = register(redis, __file__, "inbox_counts")

    def partition(self, user: str) -> int:
        return partition_for(user, self.settings.partitions)

    def _set_key(self, p: int, user: str, status: str, ns: str) -> str:
        k = self.keys
        if status in ("all", "snoozed"):
            return k.inbox(p, user, ns)
        if status == "unread":
            return k.inbox_unread(p, user, ns)
        if status == "read":
            return k.inbox_read(p, user, ns)
        return k.inbox_archived(p, user, ns)

    async def page(
        self, user: str, *, status: str = "all", limit: int = 50, cursor: str | None = None,
        after: str | None = None, ns: str | None = None,
    ) -> InboxPage:
        """Newest first; raises ValidationError for a bad status, limit, cursor or after.

        ``ns``: read that namespace whatever the partition's view is (a private one:
        consumers/retention/as_of.py), not the live view."""
        if status not in STATUSES:
            raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationError("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        upper, lower = "+", "-"
        if cursor is not None:
            upper = "(" + positions.padded(positions.check(cursor, "cursor"))
        if after is not None:  # ";" sorts right after ":", so the item at `after` is out
            lower = "(" + positions.padded(positions.check(after, "after")) + ";"
        p = self.partition(user)
        k = self.keys
        pinned = ns
        for _ in range(NS_RETRIES):
            ns = pinned or self.views.cached(p)
            reply = await self._page(
                keys=[k.partition_view(p), self._set_key(p, user, status, ns),
                      k.inbox_unread(p, user, ns), k.inbox_unseen(p, user, ns),
                      k.inbox_expiring(p, user, ns)],
                args=[ns, LIVE_NS, upper, lower, limit + 1, k.item(p, "", ns),
                      "pinned" if pinned else "", "snoozed" if status == "snoozed" else ""],
            )
            if text(reply[0]) == "ns":
                self.views.remember(p, text(reply[1]))
                continue
            members = [text(m) for m in reply[2]]
            found = []
            for member, fields in zip(members[:limit], reply[4 : 4 + limit], strict=False):
                item = _item(member.partition(":")[2], fields)
                if item is not None:
                    found.append(item)
            more = len(members) > limit
            next_cursor = positions.unpadded(members[limit - 1].partition(":")[0]) if more else None
            return InboxPage(items=await open_items(self.data_keys, user, found),
                             next_cursor=next_cursor, unread_count=int(reply[1]),
                             unseen_count=int(reply[3]))
        raise RuntimeError(f"view of partition {p} keeps switching")

    async def unread_count(self, user: str) -> int:
        """Unread items that are not archived, snoozed or expired."""
        return (await self.page(user, status="unread", limit=1)).unread_count

    async def counts(self, user: str) -> dict[str, Any]:
        """Counts per state (``total``, ``unread``, ``unseen``, ``read``, ``archived``,
        ``snoozed``) and per category (``{category: {total, unread}}``), one snapshot;
        expired items are not counted, snoozed ones only as ``snoozed``."""
        p = self.partition(user)
        k = self.keys
        for _ in range(NS_RETRIES):
            ns = self.views.cached(p)
            reply = await self._counts(
                keys=[k.partition_view(p), k.inbox(p, user, ns), k.inbox_unseen(p, user, ns)],
                args=[ns, LIVE_NS, k.item(p, "", ns)])
            if text(reply[0]) == "ns":
                self.views.remember(p, text(reply[1]))
                continue
            doc: dict[str, Any] = json.loads(text(reply[1]))
            return doc
        raise RuntimeError(f"view of partition {p} keeps switching")

    async def item(self, user: str, notification_id: str) -> dict[str, Any] | None:
        """The item, or None when absent, deleted, evicted, or not this user's."""
        p = self.partition(user)
        if not is_id(notification_id) or partition_of(notification_id) != p:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.keys.item(p, notification_id, self.views.cached(p)), "p")
            [[padded]] = await pipe.execute()
        member = f"{text(padded)}:{notification_id}" if padded is not None else ""

        def read(pipe: Any, ns: str) -> None:
            pipe.hmget(self.keys.item(p, notification_id, ns), "u", *ITEM_FIELDS)
            pipe.zscore(self.keys.inbox_unseen(p, user, ns), member)

        fields, unseen = await self.views.snapshot(p, read)
        if fields[0] is None or text(fields[0]) != user:
            return None
        expires = fields[11]
        if expires is not None and int(expires) <= int(time.time() * 1000):
            return None  # expired: hidden like in pages
        found = _item(notification_id, [*fields[1:], b"0" if unseen is not None else b"1"])
        return None if found is None else (await open_items(self.data_keys, user, [found]))[0]

    async def topics(self, user: str) -> list[str]:
        """The topics the user follows, sorted."""
        p = self.partition(user)
        [members] = await self.views.snapshot(
            p, lambda pipe, ns: pipe.smembers(self.keys.user_topics(p, user, ns)))
        return sorted(text(m) for m in members)

    async def last_change(self, user: str) -> str | None:
        """The highest position that changed the user's inbox, or None."""
        p = self.partition(user)
        replies = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hget(self.keys.user_state(p, user, ns), "pos")
        )
        return None if replies[0] is None else text(replies[0])

    async def token_epoch(self, user: str) -> int:
        """Ms since the epoch before which the user's tokens are revoked (0: none)."""
        p = self.partition(user)
        replies = await self.views.snapshot(
            p, lambda pipe, ns: pipe.hget(self.keys.user_state(p, user, ns), "te")
        )
        return 0 if replies[0] is None else int(text(replies[0]))

    async def checkpoint(self, partition: int) -> str | None:
        """The last position applied to partition's live view (None before any)."""
        replies = await self.views.snapshot(
            partition, lambda pipe, ns: pipe.get(self.keys.checkpoint(partition, ns, GROUP))
        )
        return None if replies[0] is None else text(replies[0])

    async def wait_for(
        self, partition: int, position: str, timeout: float  # noqa: ASYNC109 (contract)
    ) -> bool:
        """True once ``position`` is projected (read-your-writes), False after ``timeout``.

        Polls the checkpoint (2 ms doubling to 50 ms). A dead-lettered entry counts
        as projected: the checkpoint moves past it.
        """
        target = positions.parse(positions.check(position, "position"))
        deadline = time.monotonic() + max(0.0, timeout)
        delay = WAIT_POLL_FIRST_S
        while True:
            current = await self.checkpoint(partition)
            if current is not None and positions.parse(current) >= target:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, WAIT_POLL_MAX_S)
