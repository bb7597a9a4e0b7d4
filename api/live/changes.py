"""Turning log entries of one user into live messages, with state from the projection.

An entry says what happened (created, read, archived, deleted, all read); the
projection says what the item looks like now. Each message carries the item's
current state (read after the entry was projected, so it includes the entry's
effect and possibly later ones) and the unread count as it is now; clients
replace their copy, so applying messages in order converges on the projection.

Mapping: ``notification.created`` → ``item.created`` (skipped when the item is
already gone: deleted or evicted, the client never needs it); read, unread and
archived → ``item.changed`` (``item.removed`` when the item is gone);
``notification.deleted`` → ``item.removed``; ``notification.all_read`` →
``inbox.read_all``. Other event types change no inbox and give no message.

Failure modes: Redis errors propagate; nothing is half-delivered because
messages are only built, not sent, here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from herald.api.live import messages as m
from herald.api.live.journal import Entry
from herald.consumers.projection.queries import InboxQueries, iso
from herald.streams.events import (
    AllRead,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationUnread,
)

KINDS: dict[str, str] = {
    NotificationCreated.TYPE: m.CREATED,
    NotificationRead.TYPE: m.CHANGED,
    NotificationUnread.TYPE: m.CHANGED,
    NotificationArchived.TYPE: m.CHANGED,
    NotificationDeleted.TYPE: m.REMOVED,
    AllRead.TYPE: m.READ_ALL,
}
FETCH_CONCURRENCY = 16  # item reads in flight for one batch


def relevant(entries: Iterable[Entry], user: str | None = None) -> list[Entry]:
    """Entries that change an inbox (of ``user``, when given), in order."""
    return [e for e in entries
            if e.event.type in KINDS and (user is None or e.event.user == user)]


class Changes:
    """Builds messages for a user's entries; one per process."""

    def __init__(self, queries: InboxQueries) -> None:
        self.queries = queries
        self._gate = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def _item(self, user: str, nid: str) -> dict[str, Any] | None:
        async with self._gate:
            return await self.queries.item(user, nid)

    async def messages(self, user: str, entries: Sequence[Entry]) -> list[m.Message]:
        """Messages for ``entries`` (all of ``user``, inbox-changing, in log order)."""
        if not entries:
            return []
        wanted = sorted({e.event.notification_id for e in entries
                         if KINDS[e.event.type] in (m.CREATED, m.CHANGED)})
        states = await asyncio.gather(*(self._item(user, nid) for nid in wanted))
        unread = await self.queries.unread_count(user)
        current = dict(zip(wanted, states, strict=True))
        out: list[m.Message] = []
        for entry in entries:
            env, position = entry.event, entry.position
            kind = KINDS[env.type]
            if kind == m.READ_ALL:
                up_to = getattr(env.payload, "up_to", None) or position
                out.append(m.read_all(position, up_to, iso(env.time), unread))
                continue
            nid = env.notification_id
            if kind == m.REMOVED:
                out.append(m.removed(position, nid, unread))
                continue
            item = current.get(nid)
            if item is not None:
                out.append(m.item_message(kind, position, item, unread))
            elif kind == m.CHANGED:
                out.append(m.removed(position, nid, unread))
        return out
