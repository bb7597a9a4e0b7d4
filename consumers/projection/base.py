"""What every projection shares: the context writes are built in, the write shape,
and the checks projections make of what an event names.

A projection is a pure function ``(envelope, position, context) -> [write, ...]``
(consumers/projection/registry.py names one per event type); the writes are tuples,
first item the op name, that the applier (consumers/projection/applier.py) runs in
one atomic Redis step with the checkpoint. The ops are listed in
consumers/projection/inbox.py.

Failure modes: :func:`checked_id` raises :class:`ProjectionError` (the entry is
dead-lettered with that reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from herald.consumers.errors import ProjectionError
from herald.streams.events import Envelope
from herald.streams.ids import is_id
from herald.streams.keys import Keys

# The layout of every projection key (names, kinds, fields). A snapshot records it; one
# written under another layout is refused when loaded (replay --from-start rebuilds).
# Raise it whenever a projection changes what it writes (2: the event-id buckets,
# ``Keys.seen``, that dead-letter duplicates; 3: devices, contacts, templates;
# notifications kept out of the inbox; 4: ``Keys.schedule_dropped``, user ids with
# ``:`` hex-encoded inside cancel and digest keys, the inbox model of issue 20).
LAYOUT = 4

Write = tuple[Any, ...]
# A projection's last "write" may be ``(WAKE, ms)``: not written, it tells whoever waits
# for the partition's schedule (the scheduler) that something is due at ``ms``.
WAKE = "wake"
DEFAULT_STATUS_TTL_MS = 7 * 86400 * 1000  # HERALD_STATUS_TTL's default (7 days)


@dataclass(frozen=True, slots=True)
class Context:
    """Where writes go: the partition, the namespace, and the key builder.

    ``status_ttl_ms`` is HERALD_STATUS_TTL: delivery statuses expire at event time + it.
    """

    partition: int
    ns: str
    keys: Keys
    status_ttl_ms: int = DEFAULT_STATUS_TTL_MS


Projection = Callable[[Envelope, str, Context], list[Write]]


def chain(*projections: Projection) -> Projection:
    """One projection that is ``projections`` in order, their writes concatenated."""

    def chained(env: Envelope, position: str, ctx: Context) -> list[Write]:
        return [write for projection in projections for write in projection(env, position, ctx)]

    chained.__name__ = "+".join(p.__name__ for p in projections)
    return chained


def checked_id(value: str) -> str:
    """``value`` when it is a Herald id; else ProjectionError (``invalid: …``)."""
    if not is_id(value):
        raise ProjectionError(f"invalid: notification_id {value!r} is not a Herald id")
    return value
