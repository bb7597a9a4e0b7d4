"""A template's definition: its JSON shape, and the checks made when it is registered.

A definition (``PUT /v1/templates/{id}``)::

    {"description": "…",                              # optional
     "category": "orders", "channels": ["in_app", "sms"], "priority": "critical",
                                                       # optional defaults of a publish
     "default_locale": "en",                           # the language of "default"
     "locales": {
        "default": {"title": "Order {{ order_id }} shipped", "body": "…",
                    "channels": {"sms": {"template_code": "SMS_123",
                                         "params": {"order": "{{ order_id }}"}},
                                 "wechat": {"template_id": "…",
                                            "fields": {"thing1": "{{ title }}"}},
                                 "push": {"title": "…", "body": "…"},
                                 "email": {"subject": "…", "body": "…"}}},
        "zh-CN": {"title": "订单 {{ order_id }} 已发货", …}},
     "example": {"order_id": "42"}}                    # data every locale is checked with

Every string under ``locales`` is a Jinja2 template (consumers/templates/render.py).
The per-channel variants are what providers need beyond a title and a body: an SMS
template code and its parameters (a map for Alibaba Cloud, a list for Tencent Cloud;
``text`` for Twilio), a WeChat template id and field mapping (``fields``, ``page`` or
``url``), a push title and body, an e-mail subject and body (see each provider in
consumers/channels/ for the keys it reads).

:func:`check_definition` is the registration check: every string compiles and every
locale renders with ``example`` — so a template error is found at registration (or in
``POST /v1/templates/{id}/preview``), never when a notification is sent. Raises
:class:`~consumers.templates.render.TemplateError` naming the place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.consumers.templates.render import DEFAULT, Renderer, TemplateError
from herald.streams.validation import CATEGORY_RE, CHANNELS, LOCALE_RE, NONBLANK, PRIORITIES

SEND_CHANNELS = tuple(ch for ch in CHANNELS if ch not in ("in_app", "webhook"))
LOCALE_PATTERN = LOCALE_RE.pattern
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MAX_LOCALES = 50

_TEXT = {"type": "string", "maxLength": 5000}
_VARIANT = {
    "type": "object", "maxProperties": 20,
    "additionalProperties": {"anyOf": [
        _TEXT,
        {"type": "object", "maxProperties": 50, "additionalProperties": _TEXT},
        {"type": "array", "maxItems": 50, "items": _TEXT},
    ]},
    "description": "A provider's fields for this channel; every string is a template.",
}
LOCALE_ENTRY = {
    "type": "object", "additionalProperties": False, "required": ["title"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NONBLANK,
                  "description": "A template; renders to at most 200 characters."},
        "body": {"type": "string", "maxLength": 5000},
        "channels": {"type": "object", "propertyNames": {"enum": list(SEND_CHANNELS)},
                     "additionalProperties": _VARIANT},
    },
}
DEFINITION = {
    "type": "object", "additionalProperties": False, "required": ["locales"],
    "properties": {
        "description": {"type": "string", "maxLength": 500},
        "category": {"type": "string", "pattern": CATEGORY_RE.pattern},
        "channels": {"type": "array", "items": {"enum": list(CHANNELS)}, "minItems": 1,
                     "maxItems": len(CHANNELS), "uniqueItems": True},
        "priority": {"enum": list(PRIORITIES)},
        "default_locale": {"type": "string", "pattern": LOCALE_PATTERN,
                           "description": "The language the default entry is written in "
                                          "(its number and date formats, plural rules); "
                                          "default en."},
        "locales": {
            "type": "object", "required": [DEFAULT], "minProperties": 1,
            "maxProperties": MAX_LOCALES,
            "propertyNames": {"anyOf": [{"const": DEFAULT}, {"pattern": LOCALE_PATTERN}]},
            "additionalProperties": LOCALE_ENTRY,
            "description": "default (required) and BCP 47 locales (zh-CN, zh, en…). A user "
                           "in zh-CN gets zh-CN, else zh, else default.",
        },
        "example": {"type": "object", "description": "Data every locale is rendered with "
                                                     "when the template is registered."},
    },
}


def check_definition(definition: Mapping[str, Any], renderer: Renderer) -> None:
    """Compile every string and render every locale with ``example`` (module doc)."""
    locales = definition.get("locales")
    if not isinstance(locales, Mapping) or DEFAULT not in locales:
        raise TemplateError("locales", f"needs a {DEFAULT!r} entry")
    for key in locales:
        if key != DEFAULT and not LOCALE_RE.fullmatch(str(key)):
            raise TemplateError(f"locales.{key}", "is not a locale (BCP 47, e.g. zh-CN)")
    seen: dict[str, str] = {}
    for key in locales:
        folded = str(key).replace("_", "-").lower()
        if folded in seen:
            raise TemplateError(f"locales.{key}", f"is the same locale as {seen[folded]!r}")
        seen[folded] = str(key)
    example = definition.get("example") or {}
    if not isinstance(example, Mapping):
        raise TemplateError("example", "must be an object")
    for key in locales:
        renderer.render_locale(definition, str(key), example)


def template_defaults(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The publish fields a template gives when the request does not."""
    return {name: definition[name] for name in ("category", "channels", "priority")
            if name in definition}
