"""Replay's fast path: fold a fresh partition in memory, write only the net result.

Building a namespace from the log with the live apply script costs every event its
state reads (EXISTS, HMGET, ZCARD) and one write per key it touches. When a
partition is built from the start of its log into an empty namespace, the builder
already knows the whole state it is building, so :class:`InboxFold` keeps that state
in memory, applies the inbox ops of consumers/lua/projector_apply.lua to it op for op
(same conditions: exists, owned, already read, the inbox cap and its evictions,
read-all bounds), and at each flush turns what changed since the last flush into
plain writes: one HSET per created item, one ZADD and one ZREM per touched sorted
set, DEL/HSET/HDEL for items that changed, one HSET ``pos`` per changed user.
``("call", …)`` ops (delivery status, preferences, schedule…) touch other keys
and pass through in order. The flush is one record of ``call`` ops for the same
apply script in build mode, so the writes and the checkpoint stay one atomic step,
and a build interrupted after any flush resumes on the live path (the state it left
in Redis is exactly what the script would have built).

Guarantee: after a flush the namespace holds what the apply script would have
written for the same records — ``herald replay --verify`` and the property test
(tests/consumers/test_property.py) compare the two key by key. Memory: one entry per
live inbox item of the partition (at most users times ``HERALD_INBOX_MAX``);
:attr:`InboxFold.full` says when :data:`MAX_ITEMS` is reached, and the builder then
continues the partition on the live path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consumers.positions import padded as pad

MAX_ITEMS = 1_000_000  # items kept in memory per partition before falling back
CHUNK = 500  # members or fields per written command (Lua's unpack has a stack limit)
PAD_LEN = 36  # len(padded position); a member is padded + ":" + notification id
INBOX, UNREAD, READ, ARCHIVED = 0, 1, 2, 3


@dataclass(slots=True)
class _Item:
    user: str
    member: str
    content: tuple[str, ...] | None  # category, title, body, data, created (until written)
    read: str | None = None
    archived: bool = False
    fresh: bool = True  # created since the last flush


class InboxFold:
    """The inbox state of one partition and namespace, folded in memory."""

    def __init__(self, prefixes: Sequence[str], cap: int) -> None:
        # Key prefixes as the apply script gets them: item, inbox, unread, read,
        # archived, user state.
        self.p_item, *sets, self.p_user = prefixes
        self.p_sets = sets
        self.cap = cap
        self.items: dict[str, _Item] = {}
        self.sets: dict[tuple[int, str], dict[str, None]] = {}
        # What changed since the last flush, with the state it had then.
        self._set_start: dict[tuple[int, str], dict[str, bool]] = {}
        self._item_start: dict[str, tuple[str | None, bool] | None] = {}
        self._changed: dict[str, str] = {}
        self._calls: list[Any] = []

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_ITEMS

    # ------------------------------------------------------------------ state
    def _touch_item(self, nid: str) -> None:
        if nid not in self._item_start:
            item = self.items.get(nid)
            self._item_start[nid] = None if item is None else (item.read, item.archived)

    def _add(self, kind: int, user: str, member: str) -> None:
        members = self.sets.setdefault((kind, user), {})
        start = self._set_start.setdefault((kind, user), {})
        if member not in start:
            start[member] = member in members
        members[member] = None

    def _remove(self, kind: int, user: str, member: str) -> None:
        members = self.sets.get((kind, user))
        if members is None or member not in members:
            return
        start = self._set_start.setdefault((kind, user), {})
        if member not in start:
            start[member] = True
        del members[member]

    def _owned(self, user: str, nid: str) -> _Item | None:
        item = self.items.get(nid)
        return item if item is not None and item.user == user else None

    def _drop(self, user: str, member: str) -> None:
        for kind in (UNREAD, READ, ARCHIVED):
            self._remove(kind, user, member)
        nid = member[PAD_LEN + 1:]
        self._touch_item(nid)
        self.items.pop(nid, None)

    # -------------------------------------------------------------------- ops
    def _create(self, op: Sequence[Any], padded: str, user: str) -> bool:
        nid = op[1]
        if nid in self.items:
            return False
        self._touch_item(nid)
        member = f"{padded}:{nid}"
        self.items[nid] = _Item(user, member, tuple(op[2:7]))
        self._add(INBOX, user, member)
        self._add(UNREAD, user, member)
        inbox = self.sets[(INBOX, user)]
        while len(inbox) > self.cap:  # the oldest fall out (members sort by position)
            oldest = next(iter(inbox))
            self._remove(INBOX, user, oldest)
            self._drop(user, oldest)
        return True

    def _read(self, op: Sequence[Any], user: str) -> bool:
        item = self._owned(user, op[1])
        if item is None or item.read is not None:
            return False
        self._touch_item(op[1])
        item.read = op[2]
        if not item.archived:
            self._remove(UNREAD, user, item.member)
            self._add(READ, user, item.member)
        return True

    def _unread(self, op: Sequence[Any], user: str) -> bool:
        item = self._owned(user, op[1])
        if item is None or item.read is None:
            return False
        self._touch_item(op[1])
        item.read = None
        if not item.archived:
            self._remove(READ, user, item.member)
            self._add(UNREAD, user, item.member)
        return True

    def _archive(self, op: Sequence[Any], user: str) -> bool:
        item = self._owned(user, op[1])
        if item is None or item.archived:
            return False
        self._touch_item(op[1])
        item.archived = True
        self._remove(READ if item.read is not None else UNREAD, user, item.member)
        self._add(ARCHIVED, user, item.member)
        return True

    def _delete(self, op: Sequence[Any], user: str) -> bool:
        item = self._owned(user, op[1])
        if item is None:
            return False
        self._remove(INBOX, user, item.member)
        self._drop(user, item.member)
        return True

    def _read_all(self, op: Sequence[Any], user: str) -> bool:
        bound = op[1] + ";"  # ';' sorts right after ':': up_to itself is included
        unread = self.sets.get((UNREAD, user), {})
        members = sorted(m for m in unread if m < bound)
        for member in members:
            nid = member[PAD_LEN + 1:]
            self._touch_item(nid)
            self.items[nid].read = op[2]
            self._add(READ, user, member)
            self._remove(UNREAD, user, member)
        return bool(members)

    def feed(self, records: Sequence[Sequence[Any]]) -> None:
        """Apply the Preparer's records (``[position, padded, user, *ops]``) in order."""
        for record in records:
            position, padded, user = record[0], record[1], record[2]
            touched = False
            for op in record[3:]:
                name = op[0]
                if name == "call":
                    self._calls.append(op)
                    continue
                if name == "create":
                    done = self._create(op, padded, user)
                elif name == "read":
                    done = self._read(op, user)
                elif name == "unread":
                    done = self._unread(op, user)
                elif name == "archive":
                    done = self._archive(op, user)
                elif name == "delete":
                    done = self._delete(op, user)
                elif name == "read_all":
                    done = self._read_all(op, user)
                elif name == "touch":
                    done = True
                else:
                    raise ValueError(f"unknown op {name!r}")
                touched = touched or done
            if touched:
                self._changed[user] = position

    # ------------------------------------------------------------------ flush
    def flush(self, last_position: str) -> list[list[Any]]:
        """The records for the apply script: the net writes since the last flush."""
        ops: list[Any] = self._calls
        for nid, start in self._item_start.items():
            ops.extend(self._item_writes(nid, start))
        for (kind, user), began in self._set_start.items():
            members = self.sets.get((kind, user), {})
            key = self.p_sets[kind] + user
            gone = [m for m, was in began.items() if was and m not in members]
            new = [m for m, was in began.items() if not was and m in members]
            for i in range(0, len(gone), CHUNK):
                ops.append(("call", "ZREM", key, *gone[i:i + CHUNK]))
            for i in range(0, len(new), CHUNK):
                ops.append(("call", "ZADD", key, *(x for m in new[i:i + CHUNK] for x in (0, m))))
            if not members:
                self.sets.pop((kind, user), None)
        for user, position in self._changed.items():
            ops.append(("call", "HSET", self.p_user + user, "pos", position))
        self._calls, self._item_start, self._set_start, self._changed = [], {}, {}, {}
        return [[last_position, pad(last_position), "", *ops]] if ops else []

    def _item_writes(self, nid: str, start: tuple[str | None, bool] | None) -> list[Any]:
        key = self.p_item + nid
        item = self.items.get(nid)
        if item is None:
            return [] if start is None else [("call", "DEL", key)]
        out: list[Any] = []
        if item.fresh:
            if start is not None:  # deleted and created again since the last flush
                out.append(("call", "DEL", key))
            c, t, b, d, ts = item.content  # type: ignore[misc]
            fields = ["u", item.user, "p", item.member[:PAD_LEN], "c", c, "t", t, "b", b,
                      "d", d, "ts", ts]
            if item.read is not None:
                fields += ["r", item.read]
            if item.archived:
                fields += ["a", "1"]
            item.fresh, item.content = False, None
            return [*out, ("call", "HSET", key, *fields)]
        was_read, was_archived = start if start is not None else (None, False)
        if item.read != was_read:
            out.append(("call", "HDEL", key, "r") if item.read is None
                       else ("call", "HSET", key, "r", item.read))
        if item.archived and not was_archived:
            out.append(("call", "HSET", key, "a", "1"))
        return out
