"""Random event sequences for the property and crash tests, with their model: inbox
events, and the registry's (SMS-only notifications that make no inbox item, devices,
contacts, template versions)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from hypothesis import strategies as st

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
    Payload,
    TemplateRegistered,
    TopicSubscribed,
    TopicUnsubscribed,
)
from herald.streams.ids import new_id
from herald.streams.producer import Producer
from tests.consumers.helpers.model import InboxModel

# u2 of the tenant "acme" has the same plain name as u2 of the default tenant: two users.
USERS = ("u0", "用户 1", "u2", "acme\x1fu2")
TOPICS = ("news", "ops")
ITEM_OPS = ("read", "unread", "archive", "delete", "unarchive")
CATEGORIES = ("a", "b")
FAR = 4_000_000_000_000  # snoozes end far in the future (woke ops are published directly)
REGISTRY_OPS = ("sms_only", "device", "undevice", "contact", "template")
TOKENS = 3  # device tokens per user the ops pick among
CONTACTS = (("phone", "+8613800000001"), ("phone", "+8613800000002"), ("phone", None),
            ("locale", "zh-CN"), ("locale", "en"), ("locale", None),
            ("wecom_userid", "zhangsan"), ("wecom_userid", None))
TEMPLATE_IDS = ("order-shipped", "refund")

Op = tuple[Any, ...]

ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(USERS), st.integers(0, 9)),
        st.tuples(st.sampled_from(ITEM_OPS), st.sampled_from(USERS), st.integers(0, 60)),
        st.tuples(st.just("read_all"), st.sampled_from(USERS),
                  st.one_of(st.none(), st.integers(0, 60))),
        st.tuples(st.sampled_from(("snooze", "woke")), st.sampled_from(USERS),
                  st.integers(0, 60), st.integers(0, 2)),
        st.tuples(st.sampled_from(("subscribe", "unsubscribe")), st.sampled_from(USERS),
                  st.sampled_from(TOPICS)),
        st.tuples(st.just("seen"), st.sampled_from(USERS),
                  st.one_of(st.none(), st.integers(0, 60))),
        st.tuples(st.just("bulk"), st.sampled_from(USERS),
                  st.one_of(st.none(), st.integers(0, 60)),
                  st.sampled_from(("seen", "read", "archived")),
                  st.sampled_from((None, *CATEGORIES))),
        st.tuples(st.sampled_from(("device", "undevice")), st.sampled_from(USERS),
                  st.integers(0, TOKENS - 1)),
        st.tuples(st.sampled_from(("sms_only", "contact", "template")), st.sampled_from(USERS),
                  st.integers(0, 60)),
    ),
    min_size=3, max_size=45,
)


def random_ops(rng: random.Random, count: int, users: tuple[str, ...]) -> list[Op]:
    """A seeded sequence with mostly creations (the crash test's bulk log)."""
    out: list[Op] = []
    for _ in range(count):
        r, user = rng.random(), rng.choice(users)
        if r < 0.55:
            out.append(("create", user))
        elif r < 0.88:
            out.append((rng.choice(ITEM_OPS), user, rng.randrange(10_000)))
        elif r < 0.95:
            out.append((rng.choice(REGISTRY_OPS), user, rng.randrange(10_000)))
        else:
            out.append(("read_all", user, rng.choice([None, rng.randrange(10_000)])))
    return out


class Materializer:
    """Turns abstract ops into envelopes; items are picked among those created so far."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.created: list[str] = []
        self.positions: list[str] = []
        self.versions: dict[str, int] = {}  # template id → its latest version

    def _up_to(self, pick: int | None) -> str | None:
        return None if pick is None or not self.positions else \
            self.positions[pick % len(self.positions)]

    def payload(self, op: Op) -> Payload:
        kind, user = op[0], op[1]
        if kind in REGISTRY_OPS:
            return self._registry(kind, user, op[2])
        if kind == "create":
            # Every third with a category of its own, one in five already expired.
            flavour = op[2] if len(op) > 2 else 0
            return NotificationCreated(title=f"t{len(self.created)}", body="b" * (len(user) % 3),
                                       data={"n": len(self.created)},
                                       category=CATEGORIES[flavour % 2] if flavour % 3 else
                                       "general",
                                       expires_at=1 if flavour % 5 == 4 else
                                       (FAR if flavour == 7 else None))
        if kind == "read_all":
            return AllRead(up_to=self._up_to(op[2]))
        if kind == "subscribe":
            return TopicSubscribed(topic=op[2])
        if kind == "unsubscribe":
            return TopicUnsubscribed(topic=op[2])
        if kind == "seen":
            return InboxSeen(up_to=self._up_to(op[2]))
        if kind == "bulk":
            return InboxBulkMarked(action=op[3], category=op[4], up_to=self._up_to(op[2]))
        nid = self.created[op[2] % len(self.created)] if self.created else \
            new_id(self.producer.partition(user))
        if kind == "snooze":
            return NotificationSnoozed(notification_id=nid, until=FAR + op[3])
        if kind == "woke":
            return NotificationWoke(notification_id=nid, until=FAR + op[3])
        cls = {"read": NotificationRead, "unread": NotificationUnread,
               "archive": NotificationArchived, "delete": NotificationDeleted,
               "unarchive": NotificationUnarchived}[kind]
        return cls(notification_id=nid)

    def _registry(self, kind: str, user: str, n: int) -> Payload:
        if kind == "sms_only":  # a one-time code: sent, no inbox item
            return NotificationCreated(title=f"code {n}", channels=("sms",), inbox=False,
                                       priority="critical")
        if kind in ("device", "undevice"):
            platform, token = device_of(user, n)
            if kind == "undevice":
                return DeviceRemoved(device_id=device_id(platform, token), reason="test")
            return DeviceRegistered(device_id=device_id(platform, token), platform=platform,
                                    token=token)
        if kind == "contact":
            contact, value = CONTACTS[n % len(CONTACTS)]
            return ContactChanged(kind=contact, value=value)
        template = TEMPLATE_IDS[n % len(TEMPLATE_IDS)]
        version = self.versions[template] = self.versions.get(template, 0) + 1
        return TemplateRegistered(template_id=template, version=version, definition={
            "locales": {"default": {"title": f"{template} v{version} {{{{ n }}}}"}},
            "example": {"n": n}})

    def envelope(self, op: Op) -> Envelope:
        user = TEMPLATES_USER if op[0] == "template" else op[1]
        env = self.producer.envelope(user, self.payload(op))
        if op[0] == "create":
            self.created.append(env.id)
        return env

    def appended(self, position: str) -> None:
        self.positions.append(position)


def device_of(user: str, n: int) -> tuple[str, str]:
    """The platform and token of a user's ``n``-th device (among :data:`TOKENS`)."""
    k = n % TOKENS
    return ("apns" if k % 2 else "fcm"), f"{user}-token-{k}"


def device_id(platform: str, token: str) -> str:
    """As api/routes_devices.py names a device."""
    return hashlib.blake2b(f"{platform}\0{token}".encode(), digest_size=8).hexdigest()


def feed(model: InboxModel, envs: list[Envelope], positions: list[str]) -> None:
    for env, position in zip(envs, positions, strict=True):
        model.apply(env, position)
