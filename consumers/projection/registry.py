"""Which projection applies which event type: the one table, and :func:`project`.

Each room keeps its own pure projections beside the code that uses their state:
the inbox (consumers/projection/inbox.py), delivery status, preferences, profile,
contacts and devices (consumers/delivery/projection.py), schedules and digests
(consumers/schedule/projection.py), templates (consumers/templates/projection.py),
workflow definitions and runs (consumers/workflows/projection.py).
This module joins them; the applier (consumers/projection/applier.py) calls
:func:`project` for every entry.

To project another event type, add its function to the room's table (and remove
the type from :data:`NOT_PROJECTED`). A function raises :class:`ProjectionError` for
an event it cannot apply; the entry is dead-lettered with that reason.
"""

from __future__ import annotations

from herald.consumers.delivery import projection as delivery
from herald.consumers.projection import inbox, topics
from herald.consumers.projection.base import Context, Projection, Write, chain
from herald.consumers.schedule import projection as schedule
from herald.consumers.templates import projection as templates
from herald.consumers.workflows import projection as workflows
from herald.streams.events import (
    BusinessEventReceived,
    Envelope,
    NotificationCreated,
    UserErased,
)

PROJECTIONS: dict[str, Projection] = {
    **inbox.PROJECTIONS,
    **delivery.PROJECTIONS,
    **schedule.PROJECTIONS,
    **templates.PROJECTIONS,
    **topics.PROJECTIONS,
    **workflows.PROJECTIONS,
    # A created notification also starts the delivery status of its push channels, and
    # one fired by the scheduler leaves the schedule (or its digest items their bucket).
    NotificationCreated.TYPE: chain(inbox.project_created, delivery.project_created_status,
                                    schedule.project_fired, topics.project_known),
    UserErased.TYPE: chain(inbox.project_erased, schedule.project_erased,
                           delivery.project_erased, topics.project_erased),
}

# A read or delivery outcome of a notification a workflow run sent is kept for the run's
# conditions (``steps.<id>.read``, ``.delivered``, ``.failed``).
for _type, _mark in workflows.MARKS.items():
    PROJECTIONS[_type] = chain(PROJECTIONS[_type], _mark)

# Known types that do not change the inbox: they only advance the checkpoint.
NOT_PROJECTED: frozenset[str] = frozenset({
    BusinessEventReceived.TYPE,  # read by the workflows role (consumers/workflows/engine.py)
})


def project(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """The writes of one event (empty: the event only advances the checkpoint)."""
    fn = PROJECTIONS.get(env.type)
    if fn is None:
        return []
    return fn(env, position, ctx)
