"""Random inbox event sequences for the property and crash tests, with their model."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from herald.streams.events import (
    AllRead,
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
        elif r < 0.95:
            out.append((rng.choice(ITEM_OPS), user, rng.randrange(10_000)))
        else:
            out.append(("read_all", user, rng.choice([None, rng.randrange(10_000)])))
    return out


class Materializer:
    """Turns abstract ops into envelopes; items are picked among those created so far."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.created: list[str] = []
        self.positions: list[str] = []

    def _up_to(self, pick: int | None) -> str | None:
        return None if pick is None or not self.positions else \
            self.positions[pick % len(self.positions)]

    def payload(self, op: Op) -> Payload:
        kind, user = op[0], op[1]
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

    def envelope(self, op: Op) -> Envelope:
        env = self.producer.envelope(op[1], self.payload(op))
        if op[0] == "create":
            self.created.append(env.id)
        return env

    def appended(self, position: str) -> None:
        self.positions.append(position)


def feed(model: InboxModel, envs: list[Envelope], positions: list[str]) -> None:
    for env, position in zip(envs, positions, strict=True):
        model.apply(env, position)
