"""Herald: an event-sourced notification broker on Redis Streams.

The public names for a Python service that appends events without the HTTP hop::

    from herald import NotificationCreated, Settings, SyncProducer, connect_sync

    settings = Settings.from_env()
    producer = SyncProducer(connect_sync(settings), settings)
    producer.publish(producer.envelope("alice", NotificationCreated(title="Shipped")))

Everything else lives in the rooms (``herald.streams``: the log; ``herald.consumers``:
what reads it; ``herald.api``: the HTTP edge) and in the command line (``herald.cli``).
Names imported from here are stable across minor versions; the rooms' internals are not.
"""

from __future__ import annotations

from herald.streams.connection import connect, connect_sync
from herald.streams.errors import HeraldError, ValidationError
from herald.streams.events import (
    AllRead,
    Appended,
    DigestItemAdded,
    Envelope,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationScheduled,
    NotificationUnread,
    Payload,
    PreferencesChanged,
    ProfileChanged,
    ScheduleCancelled,
)
from herald.streams.producer import Producer, SyncProducer
from herald.streams.settings import Settings

__all__ = [
    "AllRead",
    "Appended",
    "DigestItemAdded",
    "Envelope",
    "HeraldError",
    "NotificationArchived",
    "NotificationCreated",
    "NotificationDeleted",
    "NotificationRead",
    "NotificationScheduled",
    "NotificationUnread",
    "Payload",
    "PreferencesChanged",
    "Producer",
    "ProfileChanged",
    "ScheduleCancelled",
    "Settings",
    "SyncProducer",
    "ValidationError",
    "connect",
    "connect_sync",
]
