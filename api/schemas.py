"""Request and response schemas (JSON Schema 2020-12) and request validation.

The same dictionaries validate requests here and are published in
``/openapi.json`` (api/openapi.py), so the document cannot drift from the code.
Field rules mirror ``streams/validation.py``; the producer re-checks every event,
and its ValidationError is answered the same way (422 naming the field).

Failure modes: :class:`Unprocessable` (422) whose ``errors`` list every failing
field as a dotted path (``title``, ``channels.1``, ``query.limit``,
``path.user``); rules spanning several fields are checked in code by the route.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema_rs
import orjson

from herald.api.errors import Unprocessable, field_error
from herald.streams.settings import Settings
from herald.streams.validation import (
    CHANNELS,
    LOCALE_RE,
    NONBLANK,
    PRIORITIES,
    SCHEDULE_HORIZON_MS,
    TEMPLATE_ID_RE,
)

# Any text without control characters; the 256-byte (UTF-8) bound is checked by the
# API (422), as JSON Schema counts characters, not bytes.
USER_PATTERN = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$"
KEY_PATTERN = r"^[A-Za-z0-9_.:@/+=-]{1,200}$"
CATEGORY_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
POSITION_PATTERN = r"^[0-9]{1,15}-[0-9]{1,19}$"  # 19 digits: always within 64 bits
MAX_SCHEDULE_S = SCHEDULE_HORIZON_MS // 1000
MAX_DIGEST_WINDOW_S = 7 * 86400
STATUSES = ("unread", "read", "archived", "all", "snoozed")

USER = {"type": "string", "pattern": USER_PATTERN, "not": {"const": "me"},
        "description": "A user id: 1-256 bytes of UTF-8 without control characters "
                       "(not 'me'); URL-encoded in paths."}
KEY = {"type": "string", "pattern": KEY_PATTERN}
NOTIFICATION_ID = {"type": "string", "pattern": ID_PATTERN, "description": "A Herald id (ULID)."}
POSITION = {"type": "string", "pattern": POSITION_PATTERN,
            "description": "A stream position, e.g. 1700000000000-0."}
DATE_TIME = {"type": "string", "format": "date-time"}


_SCHEDULED = {"anyOf": [{"required": ["deliver_at"]}, {"required": ["delay_seconds"]}]}
# Rules across fields: schema path → (field named in the error, message).
COMBINATIONS: dict[tuple[str, ...], tuple[str, str]] = {
    ("not",): ("delay_seconds", "give deliver_at or delay_seconds, not both"),
    ("dependentSchemas", "cancel_key"): ("cancel_key", "needs deliver_at or delay_seconds"),
    ("dependentSchemas", "digest_key"): (
        "digest_key", "cannot be combined with deliver_at or delay_seconds"),
    ("dependentSchemas", "digest_window_seconds"): ("digest_window_seconds", "needs digest_key"),
    ("dependentSchemas", "template"): (
        "template", "cannot be combined with title or body: the template writes them"),
    ("dependentSchemas", "template_version"): ("template_version", "needs template"),
    ("dependentSchemas", "locale"): ("locale", "needs template"),
    ("dependentSchemas", "version"): ("version", "cannot be combined with definition"),
}


def notification_request() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["user"],
        "if": {"not": {"required": ["template"]}},
        "then": {"required": ["title"]},
        "not": {"type": "object", "required": ["deliver_at", "delay_seconds"]},
        "dependentSchemas": {
            "cancel_key": _SCHEDULED,
            "digest_key": {"not": _SCHEDULED},
            "digest_window_seconds": {"required": ["digest_key"]},
            "template": {"not": {"anyOf": [{"required": ["title"]}, {"required": ["body"]}]}},
            "template_version": {"required": ["template"]},
            "locale": {"required": ["template"]},
        },
        "description": (
            "One notification. deliver_at and delay_seconds schedule it (give at most one); "
            "cancel_key needs one of them; digest_key collects it into the user's digest "
            "(not combinable with scheduling). A template writes the title, body and channel "
            "variants from data in the user's locale (give title or template). channels "
            "without in_app keep it out of the inbox; priority critical skips digests and "
            "quiet hours and goes ahead of queued sends."
        ),
        "properties": {
            "user": USER,
            "title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NONBLANK},
            "body": {"type": "string", "maxLength": 5000},
            "category": {"type": "string", "pattern": CATEGORY_PATTERN},
            "data": {"type": "object", "description": "Free JSON attached to the item."},
            "channels": {"type": "array", "items": {"enum": list(CHANNELS)}, "minItems": 1,
                         "maxItems": len(CHANNELS), "uniqueItems": True},
            "idempotency_key": KEY,
            "deliver_at": {**DATE_TIME, "description": "When to deliver (RFC 3339). A time "
                           "already past is due at once."},
            "delay_seconds": {"type": "number", "minimum": 0, "maximum": MAX_SCHEDULE_S},
            "cancel_key": KEY,
            "digest_key": KEY,
            "digest_window_seconds": {"type": "integer", "minimum": 1,
                                      "maximum": MAX_DIGEST_WINDOW_S},
            "expires_at": DATE_TIME,
            "recipients": {"type": "object", "propertyNames": {"enum": list(CHANNELS)},
                           "additionalProperties": {"type": "string", "minLength": 1,
                                                    "maxLength": 2000}},
            "priority": {"enum": list(PRIORITIES), "description": "critical: skips digests "
                         "and quiet hours, sent ahead of queued bulk sends (still within the "
                         "channel's rate limit). Default normal."},
            "template": {"type": "string", "pattern": TEMPLATE_ID_RE.pattern,
                         "description": "A registered template (404 when unknown)."},
            "template_version": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000,
                                 "description": "Default: the latest."},
            "locale": {"type": "string", "pattern": LOCALE_RE.pattern,
                       "description": "Render in this locale (default: the user's)."},
        },
    }


def batch_request(settings: Settings) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["notifications"],
        "properties": {
            "notifications": {
                "type": "array", "minItems": 1, "maxItems": settings.max_batch,
                "items": {"type": "object", "description": (
                    "A NotificationRequest. Each item is validated on its own: an invalid "
                    "item gets a 422 result and does not stop the others.")},
            }
        },
    }


READ_ALL_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"up_to": {**POSITION, "description": "Mark read up to this position "
                                                       "(default: everything up to now)."}},
}

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string"}, "request_id": {"type": "string"},
        "retry_after": {"type": "integer"},
        "first_id": {"type": "string"}, "first_position": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["path", "message"],
            "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}},
    },
}

INBOX_ITEM = {
    "type": "object",
    "required": ["id", "category", "title", "body", "data", "created_at", "read_at",
                 "archived", "position"],
    "properties": {
        "id": {"type": "string"}, "category": {"type": "string"},
        "title": {"type": "string"}, "body": {"type": "string"}, "data": {"type": "object"},
        "created_at": {"type": "string"}, "read_at": {"type": ["string", "null"]},
        "archived": {"type": "boolean"}, "position": {"type": "string"},
        "seen": {"type": "boolean", "description": "Seen (the inbox was opened) or read."},
        "snoozed_until": {"type": ["string", "null"]},
        "expires_at": {"type": ["string", "null"]},
    },
}

PUBLISHED = {
    "type": "object",
    "required": ["id", "position", "partition", "duplicate", "kind"],
    "properties": {
        "id": {"type": "string"}, "position": {"type": "string"},
        "partition": {"type": "integer"}, "duplicate": {"type": "boolean"},
        "kind": {"enum": ["created", "scheduled", "digest"]},
    },
}


def component_schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every named schema of the document (``#/components/schemas/<name>``)."""
    ref = _ref
    return {
        "Problem": PROBLEM,
        "NotificationRequest": notification_request(),
        "BatchRequest": batch_request(settings),
        "ReadAllRequest": READ_ALL_REQUEST,
        "Published": PUBLISHED,
        "BatchResult": {
            "type": "object", "required": ["results", "created", "duplicates", "failed"],
            "properties": {
                "created": {"type": "integer"}, "duplicates": {"type": "integer"},
                "failed": {"type": "integer"},
                "results": {"type": "array", "items": {
                    "type": "object", "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"enum": [200, 201, 409, 422]},
                        "first_id": {"type": "string"},
                        "id": {"type": "string"}, "position": {"type": "string"},
                        "partition": {"type": "integer"}, "duplicate": {"type": "boolean"},
                        "kind": {"type": "string"}, "detail": {"type": "string"},
                        "errors": PROBLEM["properties"]["errors"],  # type: ignore[index]
                    }}},
            },
        },
        "InboxItem": INBOX_ITEM,
        "InboxPage": {
            "type": "object", "required": ["items", "next_cursor", "unread_count"],
            "properties": {"items": {"type": "array", "items": ref("InboxItem")},
                           "next_cursor": {"type": ["string", "null"]},
                           "unread_count": {"type": "integer", "minimum": 0},
                           "unseen_count": {"type": "integer", "minimum": 0},
                           "as_of": {"type": "string", "description":
                                     "With ?as_of: the log position the page stands for."}},
        },
        "UnreadCount": {"type": "object", "required": ["unread_count"],
                        "properties": {"unread_count": {"type": "integer", "minimum": 0}}},
        "Accepted": {
            "type": "object", "required": ["status", "position", "detail"],
            "description": "The event is in the log but not yet projected (the projector is "
                           "behind); it will apply in order. Poll the resource later.",
            "properties": {"status": {"const": "accepted"}, "id": {"type": "string"},
                           "position": {"type": "string"}, "detail": {"type": "string"}},
        },
        "Deleted": {"type": "object", "required": ["id", "deleted", "position"],
                    "properties": {"id": {"type": "string"}, "deleted": {"const": True},
                                   "position": {"type": "string"}}},
        "AllRead": {"type": "object", "required": ["unread_count", "position"],
                    "properties": {"unread_count": {"type": "integer", "minimum": 0},
                                   "position": {"type": "string"}}},
        "Cancelled": {
            "type": "object", "required": ["cancel_key", "user", "id", "position", "status"],
            "properties": {"cancel_key": {"type": "string"}, "user": {"type": "string"},
                           "id": {"type": "string"}, "position": {"type": "string"},
                           "status": {"enum": ["projected", "accepted"]}},
        },
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"const": "ok"}}},
        "Ready": {"type": "object", "required": ["status", "max_lag_seconds"],
                  "properties": {"status": {"const": "ready"},
                                 "max_lag_seconds": {"type": "number"},
                                 "lag_bound_seconds": {"type": "number"},
                                 "warnings": {"type": "array", "items": {"type": "string"},
                                              "description": "Configuration that risks "
                                              "data (e.g. an evicting maxmemory-policy)."}}},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@cache
def _validator(schema_json: str) -> Any:
    return jsonschema_rs.Draft202012Validator(orjson.loads(schema_json), validate_formats=True)


_BY_ID: dict[int, tuple[Mapping[str, Any], Any]] = {}
MAX_COMPILED = 1024


def validator_for(schema: Mapping[str, Any]) -> Any:
    """A compiled validator for a (reference-free) schema, compiled once per shape.

    Looked up by identity first (route schemas are long-lived objects), then by
    content, so a hot path never re-serializes its schema.
    """
    hit = _BY_ID.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode())
    if len(_BY_ID) >= MAX_COMPILED:
        _BY_ID.clear()
    _BY_ID[id(schema)] = (schema, validator)
    return validator


def _combination(error: Any) -> tuple[str, str] | None:
    path = tuple(str(p) for p in error.schema_path)
    if error.instance_path:
        return None
    for length in (2, 1):
        found = COMBINATIONS.get(path[:length])
        if found is not None and (length == 2 or path == ("not",)):
            return found
    return None


def _path(prefix: str, error: Any) -> str:
    combination = _combination(error)
    if combination is not None:
        return ".".join([prefix, combination[0]] if prefix else [combination[0]])
    parts = [prefix] if prefix else []
    parts += [str(p) for p in error.instance_path]
    extra = error.kind.as_dict()
    if "property" in extra:  # required: name the missing field, not its parent
        parts.append(str(extra["property"]))
    elif extra.get("unexpected"):
        parts.append(str(extra["unexpected"][0]))
    return ".".join(parts) or "body"


SECRET_WORDS = ("secret", "token", "password")


def _message(error: Any) -> str:
    combination = _combination(error)
    if combination is not None:
        return combination[1]
    if error.kind.name == "not" and error.instance == "me":
        return "'me' is reserved: it stands for a user token's own user"
    return str(error.message)


def check(schema: Mapping[str, Any], value: Any, prefix: str = "") -> None:
    """Validate ``value``; raise Unprocessable listing every failing field path."""
    validator = validator_for(schema)
    if validator.is_valid(value):
        return
    errors = []
    for e in validator.iter_errors(value):
        path = _path(prefix, e)
        secret = any(word in path.rsplit(".", 1)[-1] for word in SECRET_WORDS)
        # a secret's value never appears in a problem body (or the logs that keep one)
        message = f"is invalid ({e.kind.name.replace('_', ' ')})" if secret else _message(e)
        errors.append(field_error(path, message))
    errors = errors[:50]
    summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:3])
    raise Unprocessable(f"the request does not match the schema: {summary}", errors=errors)


_INT = re.compile(r"^-?[0-9]{1,18}$")


def coerce(schema: Mapping[str, Any], raw: str, path: str) -> Any:
    """Turn a path or query string into the schema's type, then validate it."""
    kind = schema.get("type")
    value: Any = raw
    if kind == "integer":
        if not _INT.match(raw):
            raise Unprocessable(f"{path} must be an integer",
                                errors=[field_error(path, "must be an integer")])
        value = int(raw)
    elif kind == "number":
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise Unprocessable(f"{path} must be a number",
                                errors=[field_error(path, "must be a number")])
    check(schema, value, path)
    return value
