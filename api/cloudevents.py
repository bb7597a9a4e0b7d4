"""CloudEvents 1.0 (structured JSON mode) at the HTTP edge: schemas and the mapping
onto Herald's events (PROTOCOL.md, "Over HTTP: CloudEvents").

A CloudEvent's ``type`` picks an entry of :data:`TYPES`, which says what its ``data``
must hold and which notification request it stands for. Only
``com.herald.notification.created`` is known today; another type (the workflows'
business events, say ``order.paid``) is a new entry here (its data schema) and in
api/routes_events.py ``MAPPINGS`` (its envelope), with no change to this one's. An
unknown ``type`` fails the schema (422, naming the known ones).

- ``source`` + ``id`` → the idempotency key :func:`idempotency_key` (a repeated event
  answers the first append);
- ``subject`` → the user; ``time`` → the event's time (``ts``); ``data`` → the
  notification fields of ``POST /v1/notifications`` (without ``user`` and
  ``idempotency_key``); ``datacontenttype`` (JSON only), ``dataschema`` and extension
  attributes are accepted and not stored.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from herald.api.schemas import USER, notification_request
from herald.streams.settings import Settings

SPECVERSION = "1.0"
CLOUDEVENT_TYPE = "application/cloudevents+json"
BATCH_TYPE = "application/cloudevents-batch+json"
NOTIFICATION_CREATED = "com.herald.notification.created"
KEY_PREFIX = "ce:"
# RFC 3339 date-times from 1971 on (any offset keeps them after the epoch).
TIME_PATTERN = r"^(197[1-9]|19[89][0-9]|[2-9][0-9]{3})-"


def idempotency_key(source: str, event_id: str) -> str:
    """``ce:`` + hex BLAKE2b-128 of ``source``, a zero byte and ``id``: unique per
    (source, id) as CloudEvents requires, and within the idempotency key's alphabet."""
    digest = hashlib.blake2b(source.encode("utf-8") + b"\0" + event_id.encode("utf-8"),
                             digest_size=16)
    return KEY_PREFIX + digest.hexdigest()


def notification_data() -> dict[str, Any]:
    """The data of ``com.herald.notification.created``: a notification request without
    the user (the ``subject``) and the idempotency key (``source`` + ``id``)."""
    schema = copy.deepcopy(notification_request())
    for name in ("user", "idempotency_key"):
        del schema["properties"][name]
    schema["required"] = ["title"]
    schema["description"] = ("The notification: the fields of POST /v1/notifications "
                             "without user (the subject) and idempotency_key (source + id).")
    return schema


@dataclass(frozen=True, slots=True)
class EventType:
    """One CloudEvents type this API takes: its data schema and summary."""

    name: str
    data_schema: dict[str, Any]
    summary: str


TYPES: dict[str, EventType] = {
    NOTIFICATION_CREATED: EventType(
        NOTIFICATION_CREATED, notification_data(),
        "A notification for the subject (published now, scheduled or collected into a "
        "digest, as its data says)."),
}


def _data_rules() -> dict[str, Any]:
    """What ``data`` must be: the one type's schema, or per ``type`` (if/then) once there
    are several."""
    if len(TYPES) == 1:
        [only] = TYPES.values()
        return {"properties": {"data": only.data_schema}}
    return {"allOf": [{"if": {"properties": {"type": {"const": t.name}}},
                       "then": {"properties": {"data": t.data_schema}}}
                      for t in TYPES.values()]}


def cloudevent_schema() -> dict[str, Any]:
    """A structured-mode CloudEvent of one of :data:`TYPES`."""
    rules = _data_rules()
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "data"],
        "description": "A CloudEvents 1.0 event, structured JSON mode. Known types: "
                       + ", ".join(f"{t.name} ({t.summary})" for t in TYPES.values()),
        "properties": {
            "specversion": {"const": SPECVERSION},
            "id": {"type": "string", "minLength": 1, "maxLength": 256,
                   "description": "Unique per source: with it, the idempotency key."},
            "source": {"type": "string", "minLength": 1, "maxLength": 1024,
                       "format": "uri-reference"},
            "type": {"enum": sorted(TYPES), "description": "A known event type."},
            "subject": {**USER, "description": "The user the notification is for."},
            "time": {"type": "string", "format": "date-time", "pattern": TIME_PATTERN,
                     "description": "When it happened (RFC 3339, 1971 or later): the "
                                    "notification's created_at. Default: now."},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"type": "string", "format": "uri", "maxLength": 2048},
            "data": {"type": "object"},
            **rules.get("properties", {}),
        },
        **({"allOf": rules["allOf"]} if "allOf" in rules else {}),
        "propertyNames": {"pattern": "^[a-z0-9]{1,20}$"},
        "additionalProperties": {"type": ["string", "integer", "boolean"],
                                 "description": "Extension attributes: accepted, not stored."},
    }


def batch_schema(settings: Settings) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": settings.max_batch,
            "items": {"type": "object", "description": (
                "A CloudEvent. Each is validated on its own: an invalid one gets a 422 "
                "result and does not stop the others.")}}


def event_time_ms(event: dict[str, Any], now: int) -> int:
    """The event's time in ms: its ``time`` (schema-checked), else ``now``."""
    text = event.get("time")
    if text is None:
        return now
    moment = datetime.fromisoformat(text.upper())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def notification_item(event: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /v1/notifications`` request a (schema-valid) CloudEvent stands for."""
    return {**event["data"], "user": event["subject"],
            "idempotency_key": idempotency_key(event["source"], event["id"])}
