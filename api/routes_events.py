"""CloudEvents in: ``POST /v1/events`` (one event or a batch) and a notification's
status by its CloudEvent (service keys only). The mapping is api/cloudevents.py.

- ``Content-Type: application/cloudevents+json`` (or ``application/json``): one
  event; 201 like ``POST /v1/notifications`` plus ``source`` and ``event_id``, 200
  for a repeated ``source`` + ``id`` (the first append, nothing appended).
- ``application/cloudevents-batch+json``: an array of up to ``HERALD_MAX_BATCH``
  events, each validated on its own (per-item 201/200/422), the valid ones appended
  together.
- ``GET /v1/notifications/by-event-id?source=&id=[&subject=]``: what
  ``GET /v1/notifications/{id}`` answers, found through the idempotency records (so
  for at least ``HERALD_DEDUPE_WINDOW`` after the publish); 404 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from herald.api import cloudevents as ce
from herald.api.appending import count_published
from herald.api.auth import valid_user
from herald.api.context import PRODUCER, REDIS, SCHEMAS
from herald.api.errors import NotFound, Unprocessable, field_error
from herald.api.jsonio import json_response
from herald.api.routes_delivery import DELIVERY_QUERIES, visible_to
from herald.api.routes_publish import build_payload, conflict_result, published_body
from herald.api.routing import Call, Param, Reply, Route
from herald.api.schemas import USER, check
from herald.streams import codec, tenants
from herald.streams.errors import CodecError, ValidationError
from herald.streams.events import Appended, Envelope
from herald.streams.idempotency import IdempotencyRecords
from herald.streams.partitions import partition_for
from herald.streams.producer import Producer, now_ms
from herald.streams.settings import Settings
from herald.streams.validation import validate_envelope


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    published = {"type": "object",
                 "required": ["id", "position", "partition", "duplicate", "kind", "source",
                              "event_id"],
                 "properties": {"id": {"type": "string"}, "position": {"type": "string"},
                                "partition": {"type": "integer"},
                                "duplicate": {"type": "boolean"}, "kind": {"type": "string"},
                                "source": {"type": "string"}, "event_id": {"type": "string"}}}
    batch_result = {
        "type": "object", "required": ["results", "created", "duplicates", "failed"],
        "properties": {
            "created": {"type": "integer"}, "duplicates": {"type": "integer"},
            "failed": {"type": "integer"},
            "results": {"type": "array", "items": {
                "type": "object", "required": ["index", "status"],
                "properties": {**published["properties"],  # type: ignore[dict-item]
                               "index": {"type": "integer"},
                               "status": {"enum": [200, 201, 409, 422]},
                               "first_id": {"type": "string"},
                               "detail": {"type": "string"}, "errors": {"type": "array"}}}},
        },
    }
    return {
        "CloudEvent": ce.cloudevent_schema(),
        "CloudEventBatch": ce.batch_schema(settings),
        "EventPublished": published,
        "EventsAnswer": {"anyOf": [published, batch_result], "description": (
            "One event: the append (a repeated source + id: the first one). A batch: "
            "per-item results, in order.")},
    }


def _envelope(producer: Producer, event: dict[str, Any], now: int, tenant: str) -> Envelope:
    """The envelope of a schema-valid CloudEvent, by its type's mapping."""
    mapping = MAPPINGS.get(event["type"])
    if mapping is None:  # a type in the schema's table without a mapping here: a bug
        raise RuntimeError(f"no mapping for the CloudEvents type {event['type']!r}")
    return mapping(producer, event, now, tenant)


def _notification(producer: Producer, event: dict[str, Any], now: int, tenant: str
                  ) -> Envelope:
    """``com.herald.notification.created``: the notification its data describes, checked
    as the producer will."""
    item = ce.notification_item(event)
    try:
        payload = build_payload(item, producer.settings, now)
    except Unprocessable as problem:  # a date-time in data: name it under data
        raise Unprocessable(f"data.{problem.detail}", errors=[
            {**e, "path": f"data.{e['path']}"} for e in problem.errors or []]) from problem
    try:
        user = tenants.scoped(tenant, valid_user(item["user"], "subject"))
    except ValidationError as exc:
        raise Unprocessable(f"subject: {exc.message}",
                            errors=[field_error("subject", exc.message)]) from exc
    envelope = producer.envelope(user, payload, idempotency_key=item["idempotency_key"],
                                 time_ms=ce.event_time_ms(event, now))
    try:
        raw = codec.encode(envelope)
    except CodecError as exc:
        raise Unprocessable(f"data.data: {exc}",
                            errors=[field_error("data.data", str(exc))]) from exc
    try:
        validate_envelope(envelope, len(raw), producer.limits)
    except ValidationError as exc:
        path = {"user": "subject", "event": "data"}.get(exc.field, f"data.{exc.field}")
        raise Unprocessable(f"{path}: {exc.message}",
                            errors=[field_error(path, exc.message)]) from exc
    return envelope


# CloudEvents type → its envelope (one entry per api/cloudevents.py ``TYPES`` entry).
MAPPINGS: dict[str, Callable[[Producer, dict[str, Any], int, str], Envelope]] = {
    ce.NOTIFICATION_CREATED: _notification,
}


def _body(event: dict[str, Any], envelope: Envelope, appended: Appended) -> dict[str, Any]:
    return {**published_body(envelope, appended), "source": event["source"],
            "event_id": event["id"]}


def _tenant(call: Call) -> str:
    return call.principal.tenant if call.principal is not None else tenants.DEFAULT


async def publish_events(call: Call) -> web.Response:
    producer = call.app[PRODUCER]
    now = now_ms()
    if call.media_type != ce.BATCH_TYPE:
        envelope = _envelope(producer, call.body, now, _tenant(call))
        appended = await producer.publish(envelope)
        count_published(call.app, [envelope], [appended])
        return json_response(_body(call.body, envelope, appended),
                             200 if appended.duplicate else 201)
    schema = call.app[SCHEMAS]["CloudEvent"]
    items = call.body
    results: list[dict[str, Any]] = [{} for _ in items]
    envelopes, indexes = [], []
    for index, item in enumerate(items):
        try:
            check(schema, item)
            envelopes.append(_envelope(producer, item, now, _tenant(call)))
            indexes.append(index)
        except Unprocessable as problem:
            results[index] = {"index": index, "status": 422, "detail": problem.detail,
                              "errors": problem.errors or []}
    done = await producer.publish_many(envelopes)
    count_published(call.app, envelopes, done)
    for index, envelope, one in zip(indexes, envelopes, done, strict=True):
        if one.conflict:
            results[index] = conflict_result(index, one)
            continue
        results[index] = {"index": index, "status": 200 if one.duplicate else 201,
                          **_body(items[index], envelope, one)}
    duplicates = sum(1 for a in done if a.duplicate and not a.conflict)
    conflicts = sum(1 for a in done if a.conflict)
    return json_response({"results": results, "created": len(done) - duplicates - conflicts,
                          "duplicates": duplicates,
                          "failed": len(items) - len(done) + conflicts})


async def status_by_event(call: Call) -> web.Response:
    settings = call.settings
    tenant = _tenant(call)
    key = ce.idempotency_key(call.query["source"], call.query["id"])
    if tenant != tenants.DEFAULT:
        key = tenants.record_key(tenants.scoped(tenant, "-"), key)
    subject = call.query["subject"]
    partitions = ([partition_for(tenants.scoped(tenant, subject), settings.partitions)]
                  if subject is not None else list(range(settings.partitions)))
    found = await IdempotencyRecords.from_settings(settings).first(
        call.app[REDIS], partitions, key)
    doc = None if found is None else await call.app[DELIVERY_QUERIES].notification(found[1])
    doc = visible_to(doc, tenant)
    if doc is None:
        raise NotFound("no notification from this CloudEvent (none was published with this "
                       "source and id, or it was longer ago than HERALD_DEDUPE_WINDOW)")
    return json_response(doc)


def routes(settings: Settings) -> list[Route]:
    tag = "events"
    return [
        Route("POST", "/v1/events", publish_events, "events_publish",
              "Publish CloudEvents (structured JSON mode; one or a batch)", tag, "service",
              {201: Reply("Appended (one event).", "EventPublished"),
               200: Reply("One event: a repeated source + id, answered with the first "
                          "append. A batch: per-item results, in order.", "EventsAnswer")},
              body="CloudEvent",
              bodies=((ce.CLOUDEVENT_TYPE, "CloudEvent"), (ce.BATCH_TYPE, "CloudEventBatch")),
              errors=(400, 409, 413, 422), batch_body=True,
              description=(
                  "application/cloudevents+json or application/json: one CloudEvent; "
                  "application/cloudevents-batch+json: an array (at most HERALD_MAX_BATCH; "
                  "the body up to HERALD_MAX_BATCH_BODY). source + id are the idempotency "
                  "key, subject the user, time the event's time, data the notification. "
                  "See PROTOCOL.md, 'Over HTTP: CloudEvents'.")),
        Route("GET", "/v1/notifications/by-event-id", status_by_event, "notification_by_event",
              "A notification and its delivery status, by the CloudEvent that created it",
              tag, "service",
              {200: Reply("The notification and each channel's state.",
                          "NotificationStatus")},
              params=(Param("source", "query", {"type": "string", "minLength": 1,
                                                "maxLength": 1024}, True,
                            "The CloudEvent's source."),
                      Param("id", "query", {"type": "string", "minLength": 1,
                                            "maxLength": 256}, True, "The CloudEvent's id."),
                      Param("subject", "query", USER, False,
                            "The CloudEvent's subject (the user): looks in one partition "
                            "instead of all.")),
              errors=(404, 422),
              description="Found through the idempotency records: answers for at least "
                          "HERALD_DEDUPE_WINDOW after the publish."),
    ]
