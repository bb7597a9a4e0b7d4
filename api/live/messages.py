"""Live messages: what SSE and WebSocket clients receive, encoded once and shared.

Every message is a JSON object with ``type`` and (except ``close``) ``position``,
the log position it stands for; SSE puts the position in the ``id:`` line, so a
reconnecting ``EventSource`` sends it back as ``Last-Event-ID``. Types:

- ``item.created`` / ``item.changed`` — ``item`` (the inbox item as it is now, at or
  after ``position``) and ``unread_count``;
- ``item.removed`` — ``id`` of the item gone from the inbox, and ``unread_count``;
- ``inbox.read_all`` — ``up_to`` and ``read_at``: every unread, unarchived item at or
  below ``up_to`` is now read; ``unread_count``;
- ``ready`` — the stream is live from ``position`` (``resumed``: whether ``since``
  was honoured, ``replayed``: how many messages came from the log first);
- ``reset`` — the client's position cannot be resumed (``reason``); drop local
  state and refetch the inbox, then continue from ``position``;
- ``heartbeat`` — nothing for this user up to ``position`` (a client may resume
  from there; SSE idle keep-alives are comment lines instead);
- ``close`` — the server ends the stream (``reason``: ``shutdown``,
  ``slow_consumer``, ``token_expired``, ``token_revoked``); the client reconnects and resumes.

Positions are stream ids ``"ms-seq"``; :attr:`Message.key` is the parsed pair used
to compare them. The JSON and SSE forms are built once per message, so a message
fanned out to many connections costs one encoding.
"""

from __future__ import annotations

from typing import Any

import orjson

from herald.streams import positions

CREATED = "item.created"
CHANGED = "item.changed"
REMOVED = "item.removed"
READ_ALL = "inbox.read_all"
READY = "ready"
RESET = "reset"
HEARTBEAT = "heartbeat"
CLOSE = "close"

TYPES = (CREATED, CHANGED, REMOVED, READ_ALL, READY, RESET, HEARTBEAT, CLOSE)
SSE_KEEPALIVE = b": keep-alive\n\n"
ZERO = (0, 0)

Key = tuple[int, int]


def key_of(position: str) -> Key:
    """The comparable form of a trusted position."""
    return positions.parse(position)


class Message:
    """One message: its type, position (None for ``close``) and both wire forms."""

    __slots__ = ("json", "key", "position", "sse", "type")

    def __init__(self, type_: str, position: str | None, fields: dict[str, Any]) -> None:
        self.type = type_
        self.position = position
        self.key: Key = key_of(position) if position is not None else ZERO
        doc: dict[str, Any] = {"type": type_}
        if position is not None:
            doc["position"] = position
        doc.update(fields)
        self.json: bytes = orjson.dumps(doc)  # one line: orjson never emits a newline
        head = b"" if position is None else b"id: " + position.encode() + b"\n"
        self.sse: bytes = head + b"event: " + type_.encode() + b"\ndata: " + self.json + b"\n\n"

    @property
    def text(self) -> str:
        """The WebSocket text frame."""
        return self.json.decode()

    def __repr__(self) -> str:
        return f"Message({self.type!r}, {self.position!r})"


def item_message(type_: str, position: str, item: dict[str, Any], unread: int) -> Message:
    return Message(type_, position, {"item": item, "unread_count": unread})


def removed(position: str, notification_id: str, unread: int) -> Message:
    return Message(REMOVED, position, {"id": notification_id, "unread_count": unread})


def read_all(position: str, up_to: str, read_at: str | None, unread: int) -> Message:
    return Message(READ_ALL, position, {"up_to": up_to, "read_at": read_at,
                                        "unread_count": unread})


def ready(position: str, unread: int, *, resumed: bool, replayed: int) -> Message:
    return Message(READY, position, {"unread_count": unread, "resumed": resumed,
                                     "replayed": replayed})


def reset(position: str, unread: int, reason: str) -> Message:
    return Message(RESET, position, {"unread_count": unread, "reason": reason})


def heartbeat(position: str) -> Message:
    return Message(HEARTBEAT, position, {})


def close(reason: str, detail: str) -> Message:
    return Message(CLOSE, None, {"reason": reason, "detail": detail})
