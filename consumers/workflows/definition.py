"""A workflow's definition: its JSON shape, and the checks made when it is registered.

A definition (``PUT /v1/workflows/{key}``, ``herald workflow put FILE``)::

    {"description": "…",
     "example": {"order_id": "42", "deadline": "2026-12-08T12:00:00Z"},
                               # data every template and condition is checked with
     "cancel_on": [{"event": "order.paid", "match": "order_id"}],
     "steps": [
       {"id": "placed", "type": "send", "channels": ["in_app", "sms"],
        "template": "order_placed"},
       {"id": "before", "type": "delay", "until": "deadline", "offset": "-15m"},
       {"id": "remind", "type": "send", "channels": ["in_app", "wechat"],
        "title": "Order {{ order_id }} is not paid", "body": "…"},
       {"id": "paid", "type": "wait_for", "event": "order.paid", "match": "order_id",
        "timeout": "10m", "on_match": "stop"},
       {"id": "sms", "type": "send", "channels": ["sms"], "template": "order_unpaid",
        "if": "!steps.remind.read"}]}

Steps run in order. ``send`` appends one notification (a registered template of
consumers/templates/, or inline ``title``/``body`` rendered the same way; ``category``,
``priority`` optional) to the channels named, through the ordinary delivery path;
``delay`` waits ``for`` a duration, or ``until`` a date-time field of the data plus an
``offset`` (negative: before it), and with ``window: true`` a delay that would end
inside the user's quiet hours ends when they do (the next send window, in the user's
time zone: consumers/delivery/quiet.py); ``wait_for`` waits for a business event ``event``
of the user whose ``data.<match>`` equals the trigger's (any such event when ``match``
is absent), at most ``timeout``, then goes on (``on_match``: ``continue``, the default,
or ``stop`` the run); ``digest`` collects the notification into the user's digest
``digest_key`` (the existing digests). Every step may carry ``if``, a CEL condition
(consumers/workflows/expressions.py): false skips the step. ``cancel_on`` lists
business events that stop every pending step of the run. Durations are
``<n>ms|s|m|h|d``.

:func:`problems` is the registration check: every error, each with its path
(``steps.2.if``), not just the first — unknown step types, duplicate ids, conditions
that do not compile or name a later step, waits without a timeout, templates that do
not exist or do not render with ``example``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from herald.consumers.templates.render import Renderer, TemplateError
from herald.consumers.workflows.expressions import ConditionError, compile_condition
from herald.streams.validation import CATEGORY_RE, CHANNELS, PRIORITIES

KEY_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
EVENT_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DURATION_PATTERN = r"^[0-9]{1,9}(ms|s|m|h|d)$"
OFFSET_PATTERN = r"^-?[0-9]{1,9}(ms|s|m|h|d)$"
STEP_TYPES = ("send", "delay", "wait_for", "digest")
MAX_STEPS = 50
MAX_WAIT_MS = 366 * 86_400_000
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(-?)([0-9]{1,9})(ms|s|m|h|d)$")

_TEXT = {"type": "string", "minLength": 1, "maxLength": 5000}
_STEP_FIELDS: dict[str, Any] = {
    "id": {"type": "string", "pattern": STEP_ID_PATTERN},
    "type": {"enum": list(STEP_TYPES)},
    "if": {"type": "string", "minLength": 1, "maxLength": 1000,
           "description": "A CEL condition over data, recipient and earlier steps."},
    "channels": {"type": "array", "items": {"enum": list(CHANNELS)}, "minItems": 1,
                 "maxItems": len(CHANNELS), "uniqueItems": True},
    "template": {"type": "string", "pattern": KEY_PATTERN},
    "title": {**_TEXT, "maxLength": 200},
    "body": _TEXT,
    "category": {"type": "string", "pattern": CATEGORY_RE.pattern},
    "priority": {"enum": list(PRIORITIES)},
    "for": {"type": "string", "pattern": DURATION_PATTERN},
    "until": {"type": "string", "pattern": FIELD_PATTERN,
              "description": "A field of the trigger's data holding an RFC 3339 date-time."},
    "offset": {"type": "string", "pattern": OFFSET_PATTERN},
    "window": {"type": "boolean",
               "description": "true: a delay that ends inside the user's quiet hours ends "
                              "when they do (the next send window)."},
    "event": {"type": "string", "pattern": EVENT_PATTERN},
    "match": {"type": "string", "pattern": FIELD_PATTERN},
    "timeout": {"type": "string", "pattern": DURATION_PATTERN},
    "on_match": {"enum": ["continue", "stop"]},
    "digest_key": {"type": "string", "pattern": r"^[A-Za-z0-9_.:@/+=-]{1,100}$"},
}
def _variant(kind: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    names = ("id", "type", "if", *required, *optional)
    return {"type": "object", "additionalProperties": False,
            "required": ["id", "type", *required],
            "properties": {n: ({"const": kind} if n == "type" else _STEP_FIELDS[n])
                           for n in names}}


_CONTENT = ("category", "priority")
STEP_VARIANTS = {
    "send (template)": _variant("send", ("channels", "template"), _CONTENT),
    "send (inline)": _variant("send", ("channels", "title"), ("body", *_CONTENT)),
    "digest (template)": _variant("digest", ("channels", "template", "digest_key"),
                                  ("category",)),
    "digest (inline)": _variant("digest", ("channels", "title", "digest_key"),
                                ("body", "category")),
    "delay (for)": _variant("delay", ("for",), ("window",)),
    "delay (until)": _variant("delay", ("until",), ("offset", "window")),
    "wait_for": _variant("wait_for", ("event", "timeout"), ("match", "on_match")),
}
STEP = {"oneOf": list(STEP_VARIANTS.values()),
        "description": "One of: " + "; ".join(STEP_VARIANTS) + "."}

DEFINITION = {
    "type": "object", "additionalProperties": False, "required": ["steps"],
    "properties": {
        "description": {"type": "string", "maxLength": 500},
        "example": {"type": "object", "description": "Data every template and condition "
                                                     "is checked with at registration."},
        "cancel_on": {"type": "array", "maxItems": 10, "items": {
            "type": "object", "additionalProperties": False, "required": ["event"],
            "properties": {"event": _STEP_FIELDS["event"], "match": _STEP_FIELDS["match"]}}},
        "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": STEP},
    },
}

Problem = tuple[str, str]  # (path, message)
TemplateLookup = Callable[[str], "Mapping[str, Any] | None"]


def duration_ms(text: str) -> int:
    """``15m`` → 900000 (``-15m`` → -900000); ValueError when malformed."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration (<n>ms|s|m|h|d)")
    value = int(m.group(2)) * _UNITS[m.group(3)]
    return -value if m.group(1) else value


def time_value_ms(value: Any) -> int:
    """An RFC 3339 date-time (or epoch milliseconds) → ms; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a date-time")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError("is not a date-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"is not an RFC 3339 date-time ({exc})") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def content_definition(step: Mapping[str, Any]) -> dict[str, Any]:
    """The template definition an inline ``send`` step stands for."""
    entry: dict[str, Any] = {"title": step["title"]}
    if "body" in step:
        entry["body"] = step["body"]
    return {"locales": {"default": entry}}


def _check_step(step: Mapping[str, Any], i: int, earlier: list[str], example: Mapping[str, Any],
                templates: TemplateLookup, renderer: Renderer) -> list[Problem]:
    out: list[Problem] = []
    where = f"steps.{i}"
    kind = step.get("type")
    if kind not in STEP_TYPES:
        return [(f"{where}.type", f"unknown step type {kind!r} (known: "
                 f"{', '.join(STEP_TYPES)})")]
    allowed = {"id", "type", "if"} | {
        "send": {"channels", "template", "title", "body", "category", "priority"},
        "digest": {"channels", "template", "title", "body", "category", "digest_key"},
        "delay": {"for", "until", "offset", "window"},
        "wait_for": {"event", "match", "timeout", "on_match"},
    }[str(kind)]
    for name in sorted(set(step) - allowed):
        out.append((f"{where}.{name}", f"is not a field of a {kind} step"))
    if "if" in step:
        try:
            compile_condition(str(step["if"]), earlier)
        except ConditionError as exc:
            out.append((f"{where}.if", str(exc)))
    if kind in ("send", "digest"):
        out += _check_content(step, where, example, templates, renderer)
        if kind == "digest" and "digest_key" not in step:
            out.append((f"{where}.digest_key", "a digest step needs a digest_key"))
    elif kind == "delay":
        if ("for" in step) == ("until" in step):
            out.append((f"{where}.for", "a delay needs exactly one of for and until"))
        if "offset" in step and "until" not in step:
            out.append((f"{where}.offset", "an offset is relative to until"))
        if "until" in step and str(step["until"]) in example:
            field = str(step["until"])
            try:
                time_value_ms(example[field])
            except ValueError as exc:
                out.append((f"{where}.until", f"example.{field} {exc}"))
        out += _durations(step, where, ("for", "offset"))
    else:  # wait_for
        if "event" not in step:
            out.append((f"{where}.event", "a wait_for needs the business event's type"))
        if "timeout" not in step:
            out.append((f"{where}.timeout", "a wait_for needs a timeout"))
        out += _durations(step, where, ("timeout",))
    return out


def _durations(step: Mapping[str, Any], where: str, names: tuple[str, ...]) -> list[Problem]:
    out = []
    for name in names:
        if name in step:
            try:
                value = duration_ms(str(step[name]))
            except ValueError as exc:
                out.append((f"{where}.{name}", str(exc)))
                continue
            if abs(value) > MAX_WAIT_MS:
                out.append((f"{where}.{name}", "is longer than 366 days"))
    return out


def _check_content(step: Mapping[str, Any], where: str, example: Mapping[str, Any],
                   templates: TemplateLookup, renderer: Renderer) -> list[Problem]:
    if "channels" not in step:
        return [(f"{where}.channels", "a send needs at least one channel")]
    if ("template" in step) == ("title" in step):
        return [(f"{where}.template", "give exactly one of template and title")]
    if "body" in step and "template" in step:
        return [(f"{where}.body", "a template gives the body")]
    if "template" in step:
        found = templates(str(step["template"]))
        if found is None:
            return [(f"{where}.template", f"no template {step['template']!r} is registered")]
        definition, prefix = found, f"{where}.template "
    else:
        definition, prefix = content_definition(step), f"{where}."
    try:
        for locale in definition["locales"]:
            renderer.render_locale(definition, str(locale), example)
    except TemplateError as exc:
        path = exc.path.replace("locales.default.", "") if "template" not in step else exc.path
        if "template" in step:
            return [(f"{where}.template", f"{step['template']!r} does not render with "
                     f"example: {path}: {exc.message}")]
        return [(f"{prefix}{path}", f"does not render with example: {exc.message}")]
    return []


def problems(definition: Mapping[str, Any], templates: TemplateLookup,
             renderer: Renderer) -> list[Problem]:
    """Every error of a (schema-shaped) definition, by path; empty when it is valid."""
    out: list[Problem] = []
    example = definition.get("example") or {}
    if not isinstance(example, Mapping):
        return [("example", "must be an object")]
    steps = definition.get("steps")
    if not isinstance(steps, list) or not steps:
        return [("steps", "needs at least one step")]
    seen: dict[str, int] = {}
    earlier: list[str] = []
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping):
            out.append((f"steps.{i}", "must be an object"))
            continue
        sid = step.get("id")
        if not isinstance(sid, str) or not re.fullmatch(STEP_ID_PATTERN, sid):
            out.append((f"steps.{i}.id", "must be 1-64 of A-Z a-z 0-9 _, not starting "
                        "with a digit"))
        elif sid in seen:
            out.append((f"steps.{i}.id", f"duplicates the id of steps.{seen[sid]}"))
        else:
            seen[sid] = i
        out += _check_step(step, i, list(earlier), example, templates, renderer)
        if isinstance(sid, str):
            earlier.append(sid)
    return out
