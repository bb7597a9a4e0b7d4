"""An in-memory model of the intended inbox behaviour (not of Redis), for comparisons.

Fed the same envelopes and positions as the log, it says what every user's inbox
must look like: items newest first with read time, archive, seen, snooze and expiry,
the unread and unseen counts, and the counts per state and category. Written from the
rules in consumers/projection/inbox.py, independently of the Lua.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from herald.consumers.projection.queries import iso
from herald.streams.events import (
    TEMPLATES_USER,
    AllRead,
    ContactChanged,
    DeviceRegistered,
    DeviceRemoved,
    Envelope,
    InboxBulkMarked,
    InboxSeen,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationSnoozed,
    NotificationUnarchived,
    NotificationUnread,
    NotificationWoke,
    ProfileChanged,
    TemplateRegistered,
    TopicSubscribed,
    TopicUnsubscribed,
    UserErased,
)
from herald.streams.positions import parse


@dataclass
class ModelItem:
    id: str
    user: str
    position: str
    title: str
    category: str
    body: str
    data: dict[str, Any]
    created_ms: int
    read_ms: int | None = None
    archived: bool = False
    unseen: bool = True
    snoozed: int | None = None
    expires: int | None = None

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "title": self.title,
                "body": self.body, "data": self.data, "created_at": iso(self.created_ms),
                "read_at": iso(self.read_ms), "archived": self.archived,
                "position": self.position, "seen": not self.unseen or self.read_ms is not None,
                "snoozed_until": iso(self.snoozed), "expires_at": iso(self.expires)}

    def expired(self, now: int) -> bool:
        return self.expires is not None and self.expires <= now


def _now() -> int:
    return int(time.time() * 1000)


class InboxModel:
    def __init__(self, inbox_max: int) -> None:
        self.inbox_max = inbox_max
        self.items: dict[str, ModelItem] = {}  # every live item by id
        self.topics: dict[str, set[str]] = {}  # user -> topics followed
        self.registry = RegistryModel()

    def _mine(self, user: str, nid: str) -> ModelItem | None:
        item = self.items.get(nid)
        return item if item is not None and item.user == user else None

    def _below(self, user: str, position: str, up_to: str | None, category: str | None
               ) -> list[ModelItem]:
        bound = parse(position if up_to is None else up_to)
        return [i for i in self.items.values()
                if i.user == user and parse(i.position) <= bound
                and (category is None or i.category == category)]

    def apply(self, env: Envelope, position: str) -> None:
        p, user = env.payload, env.user
        self.registry.apply(env)
        if isinstance(p, NotificationCreated) and not p.in_inbox:
            return  # channels without in_app: sent, never an inbox item
        if isinstance(p, TopicSubscribed):
            self.topics.setdefault(user, set()).add(p.topic)
        elif isinstance(p, TopicUnsubscribed):
            self.topics.setdefault(user, set()).discard(p.topic)
        elif isinstance(p, NotificationCreated):
            nid = p.notification_id or env.id
            if nid in self.items:
                return
            log_ms = parse(position)[0]
            for old in [i for i in self.items.values() if i.user == user and i.expired(log_ms)]:
                del self.items[old.id]
            self.items[nid] = ModelItem(nid, user, position, p.title, p.category, p.body,
                                        dict(p.data), env.time, expires=p.expires_at)
            mine = sorted((i for i in self.items.values() if i.user == user),
                          key=lambda i: parse(i.position))
            for old in mine[: max(0, len(mine) - self.inbox_max)]:
                del self.items[old.id]
        elif isinstance(p, NotificationRead):
            item = self._mine(user, p.notification_id)
            if item is not None and item.read_ms is None:
                item.read_ms, item.unseen = env.time, False
        elif isinstance(p, NotificationUnread):
            item = self._mine(user, p.notification_id)
            if item is not None:
                item.read_ms = None
        elif isinstance(p, NotificationArchived):
            item = self._mine(user, p.notification_id)
            if item is not None and item.snoozed is None:
                item.archived, item.unseen = True, False
        elif isinstance(p, NotificationUnarchived):
            item = self._mine(user, p.notification_id)
            if item is not None:
                item.archived = False
        elif isinstance(p, NotificationSnoozed):
            item = self._mine(user, p.notification_id)
            if item is not None and not item.archived:
                item.snoozed, item.unseen = p.until, False
        elif isinstance(p, NotificationWoke):
            item = self._mine(user, p.notification_id)
            if item is not None and item.snoozed == p.until:
                item.snoozed, item.read_ms, item.unseen = None, None, True
        elif isinstance(p, NotificationDeleted):
            if self._mine(user, p.notification_id) is not None:
                del self.items[p.notification_id]
        elif isinstance(p, AllRead):
            for item in self._below(user, position, p.up_to, None):
                if not item.archived and item.snoozed is None and item.read_ms is None:
                    item.read_ms, item.unseen = env.time, False
        elif isinstance(p, InboxSeen):
            for item in self._below(user, position, p.up_to, None):
                item.unseen = False
        elif isinstance(p, InboxBulkMarked):
            for item in self._below(user, position, p.up_to, p.category):
                visible = not item.archived and item.snoozed is None
                if p.action == "seen":
                    item.unseen = False
                elif p.action == "read" and visible and item.read_ms is None:
                    item.read_ms, item.unseen = env.time, False
                elif p.action == "archived" and visible:
                    item.archived, item.unseen = True, False

    def inbox(self, user: str, status: str = "all", now: int | None = None
              ) -> list[dict[str, Any]]:
        at = _now() if now is None else now

        def keep(i: ModelItem) -> bool:
            if i.expired(at):
                return False
            if status == "snoozed":
                return i.snoozed is not None
            if i.snoozed is not None:
                return False
            if status == "unread":
                return not i.archived and i.read_ms is None
            if status == "read":
                return not i.archived and i.read_ms is not None
            if status == "archived":
                return i.archived
            return True

        mine = [i for i in self.items.values() if i.user == user and keep(i)]
        return [i.as_api() for i in sorted(mine, key=lambda i: parse(i.position), reverse=True)]

    def unread(self, user: str) -> int:
        return len(self.inbox(user, "unread"))

    def unseen(self, user: str) -> int:
        at = _now()
        return sum(1 for i in self.items.values()
                   if i.user == user and i.unseen and not i.expired(at))

    def counts(self, user: str) -> dict[str, Any]:
        """What ``InboxQueries.counts`` must answer."""
        visible = self.inbox(user, "all")
        categories: dict[str, dict[str, int]] = {}
        for item in visible:
            cat = categories.setdefault(item["category"], {"total": 0, "unread": 0})
            cat["total"] += 1
            if not item["archived"] and item["read_at"] is None:
                cat["unread"] += 1
        return {"total": len(visible), "unread": self.unread(user), "unseen": self.unseen(user),
                "read": len(self.inbox(user, "read")),
                "archived": len(self.inbox(user, "archived")),
                "snoozed": len(self.inbox(user, "snoozed")), "categories": categories}

class RegistryModel:
    """What the registry must hold: each user's devices (id → platform) and contacts
    (the profile fields ContactChanged sets), and each template's latest version."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, str]] = {}
        self.contacts: dict[str, dict[str, str]] = {}
        self.templates: dict[str, int] = {}

    def apply(self, env: Envelope) -> None:
        p, user = env.payload, env.user
        if isinstance(p, DeviceRegistered):
            self.devices.setdefault(user, {})[p.device_id] = p.platform
        elif isinstance(p, DeviceRemoved):
            self.devices.get(user, {}).pop(p.device_id, None)
        elif isinstance(p, ContactChanged):
            mine = self.contacts.setdefault(user, {})
            if p.value:
                mine[p.kind] = p.value
            else:
                mine.pop(p.kind, None)
        elif isinstance(p, ProfileChanged | UserErased):
            self.contacts.pop(user, None)
            if isinstance(p, UserErased):
                self.devices.pop(user, None)
        elif isinstance(p, TemplateRegistered) and user == TEMPLATES_USER:
            self.templates[p.template_id] = max(p.version, self.templates.get(p.template_id, 0))

    def state(self, users: list[str] | tuple[str, ...], kinds: tuple[str, ...]
              ) -> dict[str, Any]:
        return {"devices": {u: dict(sorted(self.devices.get(u, {}).items())) for u in users},
                "contacts": {u: {k: self.contacts.get(u, {}).get(k) for k in kinds}
                             for u in users},
                "templates": dict(sorted(self.templates.items()))}
