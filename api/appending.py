"""Appending events from the API, and waiting until they are projected (read-your-writes).

The API writes only here, and only by appending events through the Producer.
:func:`append_and_wait` then waits at most ``HERALD_ACTION_WAIT`` for the
projector's checkpoint of the event's partition to reach the event's position;
``False`` means the event is in the log and will be applied in order, but the
projector is behind (the caller answers 202 with the position).

Failure modes: ValidationError from the producer (422); Redis errors (503).
"""

from __future__ import annotations

from aiohttp import web

from herald.api.context import METRICS, PRODUCER, QUERIES, SETTINGS
from herald.streams.events import Appended, Envelope, Payload


def count_published(
    app: web.Application, envelopes: list[Envelope], results: list[Appended]
) -> None:
    """Count appended (not duplicate) events by type."""
    counter = app[METRICS].published
    for envelope, appended in zip(envelopes, results, strict=True):
        if not appended.duplicate:
            counter.labels(envelope.type).inc()


async def append(
    app: web.Application, user: str, payload: Payload, *, idempotency_key: str | None = None
) -> Appended:
    """Append one event for ``user``; raises ValidationError before writing a bad one."""
    producer = app[PRODUCER]
    envelope = producer.envelope(user, payload, idempotency_key=idempotency_key)
    appended = await producer.publish(envelope)
    count_published(app, [envelope], [appended])
    return appended


async def append_and_wait(
    app: web.Application, user: str, payload: Payload
) -> tuple[Appended, bool]:
    """Append, then wait (bounded) until projected; returns (appended, projected)."""
    appended = await append(app, user, payload)
    timeout = app[SETTINGS].action_wait_s
    projected = await app[QUERIES].wait_for(appended.partition, appended.position, timeout)
    return appended, bool(projected)


def accepted_body(appended: Appended, notification_id: str | None = None) -> dict[str, str]:
    """The 202 body: the event is logged at ``position`` and not yet projected."""
    body = {
        "status": "accepted",
        "position": appended.position,
        "detail": "the event is in the log; the projector has not applied it yet",
    }
    if notification_id is not None:
        body["id"] = notification_id
    return body
