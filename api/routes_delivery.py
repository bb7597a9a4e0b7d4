"""Delivery routes: preferences, profile, and a notification's status by id.

- ``GET/PUT /v1/users/{user}/preferences`` (service key, or the user's own token):
  ``{"preferences": {category | "*": {channel: bool}}}``; opt-out model — a channel
  is used unless the most specific rule says false (consumers/delivery/policy.py).
  PUT replaces them all.
  ``quiet_hours`` (``{"start": "22:00", "end": "08:00", "timezone"}``, optional) hold
  non-critical pushes until the window ends (consumers/delivery/quiet.py).
- ``GET /v1/users/{user}/profile`` (both) and ``PUT`` (service keys only): delivery
  addresses — ``phone`` (E.164), ``email``, ``wechat_openid``, ``wecom_userid``,
  ``webhook_url``, ``webhook_secret`` (``whsec_<base64>``) — and ``locale`` (BCP 47:
  the language templates render in). PUT replaces the profile (absent fields are
  cleared) and re-enables endpoints that had answered 410. GET never shows the
  secret (``webhook_secret_set``) and lists ``disabled`` endpoints. Single fields:
  api/routes_devices.py (``…/contacts``).
- ``GET /v1/notifications/{id}`` (service keys): the notification and its
  per-channel delivery status (consumers/delivery/queries.py); 404 when nothing is
  known of it (never existed, or its status expired and its inbox item is gone).

Writes append an event (PreferencesChanged, ProfileChanged), then wait at most
``HERALD_ACTION_WAIT`` until it is projected and answer with the state as it now
is; when the projector is behind they answer 202 with the position.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from herald.api.appending import accepted_body, append_and_wait
from herald.api.context import REDIS, SETTINGS
from herald.api.errors import NotFound, Unprocessable, field_error
from herald.api.jsonio import json_response
from herald.api.routing import ID_PARAM, USER_PARAM, Call, Reply, Route
from herald.api.schemas import CATEGORY_PATTERN
from herald.consumers.delivery.queries import DeliveryQueries
from herald.streams import tenants
from herald.streams.egress import url_refusal
from herald.streams.events import PreferencesChanged, ProfileChanged
from herald.streams.settings import Settings
from herald.streams.validation import CHANNELS, EMAIL_RE, HHMM_RE, LOCALE_RE, PHONE_RE, URL_RE

DELIVERY_QUERIES: web.AppKey[DeliveryQueries] = web.AppKey("delivery_queries")


_TIME = {"type": ["string", "null"], "description": "ISO-8601 UTC, or null."}
_RULES = {"type": "object", "propertyNames": {"enum": list(CHANNELS)},
          "additionalProperties": {"type": "boolean"},
          "description": "channel → allowed (true) or opted out (false)."}
PREFERENCES = {"type": "object", "maxProperties": 200,
               "propertyNames": {"anyOf": [{"const": "*"}, {"pattern": CATEGORY_PATTERN}]},
               "additionalProperties": _RULES,
               "description": "category (or \"*\" for every other category) → rules."}
_OPTIONAL_TEXT = {"type": ["string", "null"]}


def _zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(available_timezones())


def quiet_hours_schema() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "required": ["start", "end", "timezone"],
            "properties": {"start": {"type": "string", "pattern": HHMM_RE.pattern},
                           "end": {"type": "string", "pattern": HHMM_RE.pattern},
                           "timezone": {"enum": _zones(), "description": "An IANA zone."}},
            "description": "Push channels hold non-critical sends from start to end (24-hour "
                           "HH:MM in the zone; may pass midnight; start = end: none)."}


def _text(pattern: str, description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, "description": description}


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    """Named schemas of these routes (merged into the app's OpenAPI components)."""
    profile_fields = {
        "phone": _text(PHONE_RE.pattern, "E.164, e.g. +8613800000000."),
        "email": _text(EMAIL_RE.pattern, "An e-mail address."),
        "wechat_openid": {"type": "string", "minLength": 1, "maxLength": 256},
        "wecom_userid": {"type": "string", "minLength": 1, "maxLength": 256},
        "locale": _text(LOCALE_RE.pattern, "BCP 47, e.g. zh-CN: templates render in it."),
        "webhook_url": _text(URL_RE.pattern, "http(s) URL receiving signed POSTs."),
        "webhook_secret": {"type": "string", "minLength": 1, "maxLength": 256,
                           "description": "whsec_<base64> (several, space-separated, "
                                          "while rotating)."},
    }
    channel_state = {
        "type": "object", "required": ["state"],
        "properties": {
            "state": {"enum": ["pending", "sent", "failed", "skipped", "expired",
                               "scheduled", "cancelled"]},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": _OPTIONAL_TEXT, "updated_at": _TIME, "last_attempt_at": _TIME,
            "sent_at": _TIME, "next_attempt_at": _TIME, "in_inbox": {"type": "boolean"},
            "read_at": _TIME, "archived": {"type": "boolean"},
        },
    }
    quiet = quiet_hours_schema()
    return {
        "PreferencesRequest": {"type": "object", "additionalProperties": False,
                               "required": ["preferences"],
                               "properties": {"preferences": PREFERENCES,
                                              "quiet_hours": quiet}},
        "Preferences": {"type": "object", "required": ["user", "preferences", "updated_at"],
                        "properties": {"user": {"type": "string"}, "preferences": PREFERENCES,
                                       "quiet_hours": {"anyOf": [quiet, {"type": "null"}]},
                                       "updated_at": _TIME}},
        "ProfileRequest": {"type": "object", "additionalProperties": False,
                           "properties": profile_fields,
                           "description": "Replaces the profile: absent fields are cleared."},
        "Profile": {
            "type": "object",
            "required": ["user", "phone", "email", "wechat_openid", "webhook_url",
                         "webhook_secret_set", "disabled", "updated_at"],
            "properties": {
                "user": {"type": "string"}, "phone": _OPTIONAL_TEXT, "email": _OPTIONAL_TEXT,
                "wechat_openid": _OPTIONAL_TEXT, "webhook_url": _OPTIONAL_TEXT,
                "wecom_userid": _OPTIONAL_TEXT, "locale": _OPTIONAL_TEXT,
                "webhook_secret_set": {"type": "boolean"},
                "disabled": {"type": "object", "additionalProperties": _TIME,
                             "description": "channel → when its receiver disabled it (410)."},
                "updated_at": _TIME,
            },
        },
        "NotificationStatus": {
            "type": "object",
            "required": ["id", "user", "category", "title", "created_at", "channels"],
            "properties": {
                "id": {"type": "string"}, "user": {"type": "string"},
                "category": {"type": "string"}, "title": {"type": "string"},
                "body": _OPTIONAL_TEXT, "data": {"type": ["object", "null"]},
                "status": {"enum": ["scheduled", "cancelled", "created"]},
                "created_at": _TIME, "expires_at": _TIME, "scheduled_for": _TIME,
                "cancelled_at": _TIME,
                "channels": {"type": "object", "additionalProperties": channel_state},
            },
        },
    }


def _queries(call: Call) -> DeliveryQueries:
    return call.app[DELIVERY_QUERIES]


async def get_preferences(call: Call) -> web.Response:
    return json_response(_plain(await _queries(call).preferences(call.owner)))


async def put_preferences(call: Call) -> web.Response:
    event = PreferencesChanged(preferences=call.body["preferences"],
                               quiet_hours=call.body.get("quiet_hours"))
    appended, projected = await append_and_wait(call.app, call.owner, event)
    if not projected:
        return json_response(accepted_body(appended), 202)
    return json_response(_plain(await _queries(call).preferences(call.owner)))


async def get_profile(call: Call) -> web.Response:
    return json_response(_plain(await _queries(call).profile(call.owner)))


async def put_profile(call: Call) -> web.Response:
    url = call.body.get("webhook_url")
    refused = None if url is None else url_refusal(url, call.app[SETTINGS].webhook_allow)
    if refused is not None:
        message = f"destination refused: the URL {refused}"
        raise Unprocessable(f"webhook_url: {message}",
                            errors=[field_error("webhook_url", message)])
    event = ProfileChanged(**{k: v for k, v in call.body.items() if v is not None})
    appended, projected = await append_and_wait(call.app, call.owner, event)
    if not projected:
        return json_response(accepted_body(appended), 202)
    return json_response(_plain(await _queries(call).profile(call.owner)))


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    """A user's document with the plain user id (a tenant's callers never see the scope)."""
    return {**doc, "user": tenants.plain(doc["user"])}


def visible_to(doc: dict[str, Any] | None, tenant: str) -> dict[str, Any] | None:
    """A notification's document as a caller of ``tenant`` sees it: None when it is
    another tenant's, else with the plain user id."""
    if doc is None or tenants.tenant_of(doc["user"]) != tenant:
        return None
    return {**doc, "user": tenants.plain(doc["user"])}


async def get_notification(call: Call) -> web.Response:
    tenant = call.principal.tenant if call.principal is not None else tenants.DEFAULT
    doc = visible_to(await _queries(call).notification(call.path["id"]), tenant)
    if doc is None:
        raise NotFound("no notification with this id (or its status has expired)")
    return json_response(doc)


def routes(settings: Settings) -> list[Route]:
    tag = "delivery"
    base = "/v1/users/{user}"
    accepted = Reply("Logged, not yet projected.", "Accepted")
    return [
        Route("GET", f"{base}/preferences", get_preferences, "preferences_get",
              "The user's delivery preferences", tag, "user",
              {200: Reply("Per category and channel; empty means everything allowed.",
                          "Preferences")}, params=(USER_PARAM,), errors=(422,)),
        Route("PUT", f"{base}/preferences", put_preferences, "preferences_put",
              "Replace the user's delivery preferences", tag, "user",
              {200: Reply("Projected: the preferences as they now are.", "Preferences"),
               202: accepted}, params=(USER_PARAM,), body="PreferencesRequest",
              errors=(400, 413, 422)),
        Route("GET", f"{base}/profile", get_profile, "profile_get",
              "The user's delivery addresses", tag, "user",
              {200: Reply("The addresses (the webhook secret is never shown).", "Profile")},
              params=(USER_PARAM,), errors=(422,)),
        Route("PUT", f"{base}/profile", put_profile, "profile_put",
              "Replace the user's delivery addresses (services only)", tag, "service",
              {200: Reply("Projected: the profile as it now is.", "Profile"), 202: accepted},
              params=(USER_PARAM,), body="ProfileRequest", errors=(400, 413, 422)),
        Route("GET", "/v1/notifications/{id}", get_notification, "notification_status",
              "A notification and its per-channel delivery status", tag, "service",
              {200: Reply("The notification and each channel's state.",
                          "NotificationStatus")},
              params=(ID_PARAM,), errors=(404, 422)),
    ]


def setup(app: web.Application) -> None:
    """Add the delivery queries once the app's Redis client exists."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if DELIVERY_QUERIES not in app:  # publishing sets it up too (api/routes_publish.py)
            app[DELIVERY_QUERIES] = DeliveryQueries(app[REDIS], app[SETTINGS])
        yield

    app.cleanup_ctx.append(context)
