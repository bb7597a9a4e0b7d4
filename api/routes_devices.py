"""The device and contact registry: push devices and single profile fields, as events.

- ``POST /v1/users/{user}/devices`` (service key, or the user's own token — an app
  registers the device it runs on): ``{"platform": "fcm" | "apns", "token", "app"?}``
  appends ``device.registered`` (the token sealed like every address). The device id
  is a digest of platform and token, so registering the same token again changes
  nothing but its time; a user keeps at most HERALD_MAX_DEVICES devices (409 beyond:
  remove one first).
- ``GET /v1/users/{user}/devices`` (both): the devices, tokens shown by their last 6
  characters.
- ``DELETE /v1/users/{user}/devices/{device_id}`` (both): appends ``device.removed``
  (404 when no such device). Delivery removes a device by itself when its provider
  reports the token invalid (consumers/delivery/dispatch.py).
- ``PUT /v1/users/{user}/contacts`` (service keys): ``{"kind", "value"}`` sets one
  profile field — ``phone`` (E.164), ``email``, ``wechat_openid``, ``wecom_userid``,
  ``locale`` (BCP 47) — without replacing the rest; ``DELETE …/contacts/{kind}``
  removes it. Both answer with the profile as it now is (``contact.changed``; a later
  ``PUT …/profile`` replaces everything, these included).

Every write appends an event and waits at most ``HERALD_ACTION_WAIT`` for it to be
projected (202 with the position when the projector is behind), so replay rebuilds the
registry exactly.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from herald.api.appending import accepted_body, append_and_wait
from herald.api.errors import Conflict, NotFound
from herald.api.jsonio import json_response
from herald.api.routes_delivery import DELIVERY_QUERIES
from herald.api.routing import USER_PARAM, Call, Param, Reply, Route
from herald.consumers.delivery.queries import DeliveryQueries
from herald.streams.events import ContactChanged, DeviceRegistered, DeviceRemoved
from herald.streams.settings import Settings
from herald.streams.validation import (
    CONTACT_KINDS,
    EMAIL_RE,
    LOCALE_RE,
    MAX_TOKEN,
    PHONE_RE,
    PLATFORMS,
)

DEVICE_PARAM = Param("device_id", "path", {"type": "string", "pattern": r"^[0-9a-f]{16}$"},
                     True, "A device id (16 hex digits).", match="[0-9a-f]{16}")
KIND_PARAM = Param("kind", "path", {"enum": list(CONTACT_KINDS)}, True,
                   "The profile field: " + ", ".join(CONTACT_KINDS) + ".",
                   match="|".join(CONTACT_KINDS))
_VALUE_RULES = {"phone": "E.164: + and 7-15 digits, e.g. +8613800138000",
                "locale": "BCP 47, e.g. zh-CN", "email": "an e-mail address"}
_TIME = {"type": ["string", "null"], "description": "ISO-8601 UTC, or null."}


def device_id(platform: str, token: str) -> str:
    """The id of a device: 16 hex of blake2b(platform, token) (names it without the token)."""
    return hashlib.blake2b(f"{platform}\0{token}".encode(), digest_size=8).hexdigest()


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    device = {
        "type": "object", "required": ["id", "platform", "app", "token_hint", "registered_at"],
        "properties": {"id": {"type": "string"}, "platform": {"enum": list(PLATFORMS)},
                       "app": {"type": ["string", "null"]},
                       "token_hint": {"type": "string", "description": "The token's last 6 "
                                                                       "characters."},
                       "registered_at": _TIME},
    }
    values = {"phone": PHONE_RE.pattern, "email": EMAIL_RE.pattern, "locale": LOCALE_RE.pattern}
    return {
        "DeviceRequest": {
            "type": "object", "additionalProperties": False, "required": ["platform", "token"],
            "properties": {
                "platform": {"enum": list(PLATFORMS)},
                "token": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN,
                          "pattern": r"^[A-Za-z0-9_:.\-]+$",
                          "description": "The push token the app got from FCM or APNs."},
                "app": {"type": "string", "pattern": r"^[A-Za-z0-9_.:@/+=-]{1,200}$",
                        "description": "APNs: the app's bundle id when it is not "
                                       "HERALD_APNS_TOPIC."},
            },
        },
        "Device": device,
        "Devices": {"type": "object", "required": ["user", "devices"],
                    "properties": {"user": {"type": "string"},
                                   "devices": {"type": "array", "items": device}}},
        "DeviceRemoved": {"type": "object", "required": ["id", "removed", "position"],
                          "properties": {"id": {"type": "string"}, "removed": {"const": True},
                                         "position": {"type": "string"}}},
        "ContactRequest": {
            "type": "object", "required": ["kind", "value"],
            "description": "One profile field: phone (E.164), email, wechat_openid, "
                           "wecom_userid, locale (BCP 47, e.g. zh-CN).",
            "additionalProperties": False,
            "properties": {"kind": {"enum": list(CONTACT_KINDS)}, "value": {"type": "string"}},
            # One rule per kind (if/then rather than oneOf, so an error names ``value``
            # and the rule it broke).
            "allOf": [
                {"if": {"properties": {"kind": {"const": kind}}},
                 "then": {"properties": {"value": {
                     "type": "string", "pattern": values[kind],
                     "description": _VALUE_RULES.get(kind, kind)} if kind in values else {
                     "type": "string", "minLength": 1, "maxLength": 256}}}}
                for kind in CONTACT_KINDS
            ],
        },
    }


def _queries(call: Call) -> DeliveryQueries:
    return call.app[DELIVERY_QUERIES]


async def register_device(call: Call) -> web.Response:
    body = call.body
    did = device_id(body["platform"], body["token"])
    known = await _queries(call).devices(call.owner)
    if did not in {d["id"] for d in known} and len(known) >= call.settings.max_devices:
        raise Conflict(f"the user has {len(known)} devices, the most HERALD_MAX_DEVICES allows;"
                       " remove one first (DELETE …/devices/{device_id})")
    event = DeviceRegistered(device_id=did, platform=body["platform"], token=body["token"],
                             app=body.get("app"))
    appended, projected = await append_and_wait(call.app, call.owner, event)
    if not projected:
        return json_response(accepted_body(appended, did), 202)
    for found in await _queries(call).devices(call.owner):
        if found["id"] == did:
            return json_response(found, 201)
    return json_response(accepted_body(appended, did), 202)  # removed meanwhile


async def list_devices(call: Call) -> web.Response:
    return json_response({"user": call.owner, "devices": await _queries(call).devices(call.owner)})


async def remove_device(call: Call) -> web.Response:
    did = call.path["device_id"]
    if did not in {d["id"] for d in await _queries(call).devices(call.owner)}:
        raise NotFound("the user has no device with this id")
    reason = "removed by the user" if call.principal and not call.principal.is_service \
        else "removed by a service"
    appended, projected = await append_and_wait(call.app, call.owner,
                                                DeviceRemoved(device_id=did, reason=reason))
    if not projected:
        return json_response(accepted_body(appended, did), 202)
    return json_response({"id": did, "removed": True, "position": appended.position})


async def _contact(call: Call, kind: str, value: str | None) -> web.Response:
    event = ContactChanged(kind=kind, value=value)
    appended, projected = await append_and_wait(call.app, call.owner, event)
    if not projected:
        return json_response(accepted_body(appended), 202)
    return json_response(await _queries(call).profile(call.owner))


async def put_contact(call: Call) -> web.Response:
    return await _contact(call, call.body["kind"], call.body["value"])


async def delete_contact(call: Call) -> web.Response:
    return await _contact(call, call.path["kind"], None)


def routes(settings: Settings) -> list[Route]:
    tag = "registry"
    base = "/v1/users/{user}"
    accepted = Reply("Logged, not yet projected.", "Accepted")
    return [
        Route("POST", f"{base}/devices", register_device, "device_register",
              "Register a push device of the user", tag, "user",
              {201: Reply("Projected: the device.", "Device"), 202: accepted},
              params=(USER_PARAM,), body="DeviceRequest", errors=(400, 409, 413, 422),
              description=f"At most HERALD_MAX_DEVICES ({settings.max_devices}) per user: "
                          "409 beyond. Registering a token again only renews it."),
        Route("GET", f"{base}/devices", list_devices, "devices_list",
              "The user's push devices", tag, "user",
              {200: Reply("Oldest first; tokens shown by their last 6 characters.",
                          "Devices")}, params=(USER_PARAM,), errors=(422,)),
        Route("DELETE", f"{base}/devices/{{device_id}}", remove_device, "device_remove",
              "Remove a push device", tag, "user",
              {200: Reply("Projected: removed.", "DeviceRemoved"), 202: accepted},
              params=(USER_PARAM, DEVICE_PARAM), errors=(404, 422)),
        Route("PUT", f"{base}/contacts", put_contact, "contact_put",
              "Set one contact of the user (services only)", tag, "service",
              {200: Reply("Projected: the profile as it now is.", "Profile"), 202: accepted},
              params=(USER_PARAM,), body="ContactRequest", errors=(400, 413, 422)),
        Route("DELETE", f"{base}/contacts/{{kind}}", delete_contact, "contact_delete",
              "Remove one contact of the user (services only)", tag, "service",
              {200: Reply("Projected: the profile as it now is.", "Profile"), 202: accepted},
              params=(USER_PARAM, KIND_PARAM), errors=(404, 422)),
    ]
