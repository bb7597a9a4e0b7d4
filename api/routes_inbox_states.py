"""Inbox states beyond read/unread (issue 20): seen, snooze, unarchive, bulk actions by
filter, and the counts per state and category.

Each action appends one event (consumers/projection/inbox.py applies it), then waits
at most ``HERALD_ACTION_WAIT`` for it to be projected (read-your-writes) and answers
with the state as it now is; 202 with the position when the projector is behind.

- ``POST …/inbox/seen`` — the inbox was opened: everything up to now (or ``up_to``)
  leaves the unseen badge, nothing is read.
- ``POST …/inbox/{id}/snooze`` — hidden until ``until`` (or for ``seconds``), then back
  as unread and unseen (the scheduler appends ``notification.woke``).
- ``POST …/inbox/{id}/unarchive`` — back in the inbox, read or unread as it was.
- ``POST …/inbox/bulk`` — ``action`` (``seen`` / ``read`` / ``archived``) on every item
  up to now (or ``up_to``), optionally of one ``category``: one event.
- ``GET …/inbox/counts`` — ``total``, ``unread``, ``unseen``, ``read``, ``archived``,
  ``snoozed`` and per category ``{total, unread}``, in one snapshot.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herald.api.appending import accepted_body, append_and_wait
from herald.api.context import QUERIES
from herald.api.errors import NotFound
from herald.api.jsonio import json_response
from herald.api.routes_publish import time_ms
from herald.api.routing import ID_PARAM, USER_PARAM, Call, Reply, Route
from herald.api.schemas import CATEGORY_PATTERN, DATE_TIME, POSITION
from herald.streams.events import (
    BULK_ACTIONS,
    InboxBulkMarked,
    InboxSeen,
    NotificationSnoozed,
    NotificationUnarchived,
    Payload,
)
from herald.streams.ids import now_ms
from herald.streams.settings import Settings
from herald.streams.validation import SCHEDULE_HORIZON_MS

MAX_SNOOZE_S = SCHEDULE_HORIZON_MS // 1000
_UP_TO = {**POSITION, "description": "Up to this position (default: everything up to now)."}


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    count = {"type": "integer", "minimum": 0}
    return {
        "SeenRequest": {"type": "object", "additionalProperties": False,
                        "properties": {"up_to": _UP_TO}},
        "SnoozeRequest": {
            "type": "object", "additionalProperties": False,
            "oneOf": [{"required": ["until"]}, {"required": ["seconds"]}],
            "properties": {"until": {**DATE_TIME, "description": "Wake at this time."},
                           "seconds": {"type": "number", "minimum": 1,
                                       "maximum": MAX_SNOOZE_S,
                                       "description": "Wake after this many seconds."}}},
        "BulkRequest": {
            "type": "object", "additionalProperties": False, "required": ["action"],
            "properties": {"action": {"enum": list(BULK_ACTIONS)},
                           "category": {"type": "string", "pattern": CATEGORY_PATTERN},
                           "up_to": _UP_TO}},
        "Marked": {"type": "object", "required": ["position", "counts"],
                   "properties": {"position": {"type": "string"},
                                  "counts": {"$ref": "#/components/schemas/InboxCounts"}}},
        "InboxCounts": {
            "type": "object",
            "required": ["total", "unread", "unseen", "read", "archived", "snoozed",
                         "categories"],
            "properties": {
                **{name: count for name in ("total", "unread", "unseen", "read", "archived",
                                            "snoozed")},
                "categories": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["total", "unread"],
                    "properties": {"total": count, "unread": count}}}}},
    }


async def counts(call: Call) -> web.Response:
    return json_response(await call.app[QUERIES].counts(call.owner))


async def _marked(call: Call, payload: Payload) -> web.Response:
    appended, projected = await append_and_wait(call.app, call.owner, payload)
    if not projected:
        return json_response(accepted_body(appended), 202)
    return json_response({"position": appended.position,
                          "counts": await call.app[QUERIES].counts(call.owner)})


async def seen(call: Call) -> web.Response:
    return await _marked(call, InboxSeen(up_to=(call.body or {}).get("up_to")))


async def bulk(call: Call) -> web.Response:
    body = call.body
    return await _marked(call, InboxBulkMarked(action=body["action"],
                                               category=body.get("category"),
                                               up_to=body.get("up_to")))


async def _item_action(call: Call, payload: Payload, nid: str) -> web.Response:
    appended, projected = await append_and_wait(call.app, call.owner, payload)
    if not projected:
        return json_response(accepted_body(appended, nid), 202)
    item = await call.app[QUERIES].item(call.owner, nid)
    if item is None:
        raise NotFound("the item is no longer in this inbox")
    return json_response(item)


async def _existing(call: Call) -> str:
    nid: str = call.path["id"]
    if await call.app[QUERIES].item(call.owner, nid) is None:
        raise NotFound("no item with this id in this inbox")
    return nid


async def snooze(call: Call) -> web.Response:
    nid = await _existing(call)
    body = call.body
    until = (time_ms(body["until"], "until") if "until" in body
             else now_ms() + round(float(body["seconds"]) * 1000))
    until = max(0, min(until, now_ms() + SCHEDULE_HORIZON_MS))
    return await _item_action(call, NotificationSnoozed(notification_id=nid, until=until), nid)


async def unarchive(call: Call) -> web.Response:
    nid = await _existing(call)
    return await _item_action(call, NotificationUnarchived(notification_id=nid), nid)


def routes(settings: Settings) -> list[Route]:
    tag = "inbox"
    base = "/v1/users/{user}/inbox"
    accepted = Reply("Logged, not yet projected.", "Accepted")
    marked = {200: Reply("Projected; the counts as they now are.", "Marked"), 202: accepted}
    item = {200: Reply("The item as it now is.", "InboxItem"), 202: accepted}
    return [
        Route("GET", f"{base}/counts", counts, "inbox_counts",
              "Counts per state and per category", tag, "user",
              {200: Reply("Counts of visible items (expired ones are not counted).",
                          "InboxCounts")}, params=(USER_PARAM,), errors=(422,)),
        Route("POST", f"{base}/seen", seen, "inbox_seen",
              "The inbox was opened: clear the unseen badge (nothing is read)", tag, "user",
              marked, params=(USER_PARAM,), body="SeenRequest", body_required=False,
              errors=(400, 413, 422)),
        Route("POST", f"{base}/bulk", bulk, "inbox_bulk",
              "Mark every item (of a category) seen, read or archived", tag, "user",
              marked, params=(USER_PARAM,), body="BulkRequest", errors=(400, 413, 422)),
        Route("POST", f"{base}/{{id}}/snooze", snooze, "inbox_snooze",
              "Hide an item until a time; it comes back unread", tag, "user", item,
              params=(USER_PARAM, ID_PARAM), body="SnoozeRequest", errors=(400, 404, 413, 422)),
        Route("POST", f"{base}/{{id}}/unarchive", unarchive, "inbox_unarchive",
              "Bring an archived item back", tag, "user", item,
              params=(USER_PARAM, ID_PARAM), errors=(404, 422)),
    ]
