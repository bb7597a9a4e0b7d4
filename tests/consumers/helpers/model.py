"""An in-memory model of the intended inbox behaviour (not of Redis), for comparisons.

Fed the same envelopes and positions as the log, it says what every user's inbox
must look like: items newest first with read time and archive flag, and the unread
count. Written from the rules in consumers/projection/registry.py, independently of the Lua.
"""

from __future__ import annotations

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
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationUnread,
    ProfileChanged,
    TemplateRegistered,
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

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "title": self.title,
                "body": self.body, "data": self.data, "created_at": iso(self.created_ms),
                "read_at": iso(self.read_ms), "archived": self.archived,
                "position": self.position}


class InboxModel:
    def __init__(self, inbox_max: int) -> None:
        self.inbox_max = inbox_max
        self.items: dict[str, ModelItem] = {}  # every live item by id
        self.registry = RegistryModel()

    def _mine(self, user: str, nid: str) -> ModelItem | None:
        item = self.items.get(nid)
        return item if item is not None and item.user == user else None

    def apply(self, env: Envelope, position: str) -> None:
        p, user = env.payload, env.user
        self.registry.apply(env)
        if isinstance(p, NotificationCreated) and not p.in_inbox:
            return  # channels without in_app: sent, never an inbox item
        if isinstance(p, NotificationCreated):
            nid = p.notification_id or env.id
            if nid in self.items:
                return
            self.items[nid] = ModelItem(nid, user, position, p.title, p.category, p.body,
                                        dict(p.data), env.time)
            mine = sorted((i for i in self.items.values() if i.user == user),
                          key=lambda i: parse(i.position))
            for old in mine[: max(0, len(mine) - self.inbox_max)]:
                del self.items[old.id]
        elif isinstance(p, NotificationRead):
            item = self._mine(user, p.notification_id)
            if item is not None and item.read_ms is None:
                item.read_ms = env.time
        elif isinstance(p, NotificationUnread):
            item = self._mine(user, p.notification_id)
            if item is not None:
                item.read_ms = None
        elif isinstance(p, NotificationArchived):
            item = self._mine(user, p.notification_id)
            if item is not None:
                item.archived = True
        elif isinstance(p, NotificationDeleted):
            if self._mine(user, p.notification_id) is not None:
                del self.items[p.notification_id]
        elif isinstance(p, AllRead):
            bound = parse(position if p.up_to is None else p.up_to)
            for item in self.items.values():
                if (item.user == user and not item.archived and item.read_ms is None
                        and parse(item.position) <= bound):
                    item.read_ms = env.time

    def inbox(self, user: str, status: str = "all") -> list[dict[str, Any]]:
        def keep(i: ModelItem) -> bool:
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
