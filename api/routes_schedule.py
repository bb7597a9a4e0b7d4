"""``DELETE /v1/scheduled/{cancel_key}``: cancel what is scheduled under a key (service keys).

Without ``?user=`` the users come from the routing index the producer writes before
each keyed schedule is appended (streams/schedule_cancel.py): every user with a
schedule under the key due no more than :data:`LATE_GRACE_MS` ago gets one
``schedule.cancelled`` event, appended with its tombstone in one atomic step, so a
cancel answered here wins over the scheduler even before the projector applies it.
None routed → 404. With ``?user=`` the lookup is skipped and that user's cancel is
appended whether or not anything is routed (for schedules appended around the
producer); a user with nothing scheduled simply has nothing cancelled.

Answer: 200 when every cancel is projected within ``HERALD_ACTION_WAIT``, else 202 (in
the log, the projector behind). Body::

    {"cancel_key", "status": "projected" | "accepted", "count",
     "cancelled": [{"user", "id", "position", "partition", "status"}, ...],
     "user", "id", "position"}   # the last three with ?user= (a single cancel)

``cancelled`` lists at most :data:`MAX_LISTED` entries; ``count`` is the total. Entries
that were already due and fired are not undone (a cancel is for what is not yet due).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from herald.api.auth import valid_user
from herald.api.context import CANCELLER, QUERIES, SETTINGS
from herald.api.errors import NotFound
from herald.api.jsonio import json_response
from herald.api.routing import Call, Param, Reply, Route
from herald.api.schemas import KEY, USER
from herald.streams import tenants
from herald.streams.events import Appended
from herald.streams.settings import Settings

LATE_GRACE_MS = 60_000  # still cancel schedules this recently due (the scheduler may lag)
MAX_LISTED = 1000
CANCEL_CHUNK = 500  # cancels per pipeline

async def cancel_scheduled(call: Call) -> web.Response:
    app = call.app
    key: str = call.path["cancel_key"]
    user: str | None = call.query.get("user")
    tenant = call.principal.tenant if call.principal is not None else tenants.DEFAULT
    canceller = app[CANCELLER]
    scoped = None if user is None else tenants.scoped(tenant, valid_user(user, "query.user"))
    targets = await canceller.targets(key, scoped, int(time.time() * 1000) - LATE_GRACE_MS)
    # Only this tenant's users: a cancel key names schedules of one tenant.
    targets = {u: due for u, due in targets.items() if tenants.tenant_of(u) == tenant}
    if not targets:
        raise NotFound(f"nothing is scheduled under cancel key {key!r} (or it is all due)")
    appended: list[Appended] = []
    users = list(targets)
    for i in range(0, len(users), CANCEL_CHUNK):
        chunk = {u: targets[u] for u in users[i : i + CANCEL_CHUNK]}
        appended += await canceller.cancel_many(key, chunk)
    projected = await _wait(app, appended)
    entries = [{"user": tenants.plain(u), "id": a.id, "position": a.position,
                "partition": a.partition, "status": "projected" if ok else "accepted"}
               for u, a, ok in zip(users, appended, projected, strict=True)]
    done = all(projected)
    body: dict[str, Any] = {"cancel_key": key, "status": "projected" if done else "accepted",
                            "count": len(entries), "cancelled": entries[:MAX_LISTED]}
    if user is not None:
        body.update(user=user, id=appended[0].id, position=appended[0].position)
    return json_response(body, 200 if done else 202)


async def _wait(app: web.Application, appended: list[Appended]) -> list[bool]:
    """Per cancel, whether the projector applied it within HERALD_ACTION_WAIT."""
    last: dict[int, str] = {}
    for a in appended:
        last[a.partition] = a.position  # appended in order per partition
    timeout = app[SETTINGS].action_wait_s
    queries = app[QUERIES]
    parts = list(last)
    results = await asyncio.gather(*(queries.wait_for(p, last[p], timeout) for p in parts))
    ok = dict(zip(parts, results, strict=True))
    return [bool(ok[a.partition]) for a in appended]


_ENTRY = {
    "type": "object", "required": ["user", "id", "position", "partition", "status"],
    "properties": {"user": {"type": "string"}, "id": {"type": "string"},
                   "position": {"type": "string"}, "partition": {"type": "integer"},
                   "status": {"enum": ["projected", "accepted"]}},
}


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    """The answer's schema (merged into the app's OpenAPI components)."""
    return {
        "ScheduleCancelled": {
            "type": "object", "required": ["cancel_key", "status", "count", "cancelled"],
            "description": "One schedule.cancelled per user; `user`, `id` and `position` "
                           "are set when the request named a user.",
            "properties": {
                "cancel_key": {"type": "string"},
                "status": {"enum": ["projected", "accepted"]},
                "count": {"type": "integer", "minimum": 1},
                "cancelled": {"type": "array", "items": _ENTRY, "maxItems": MAX_LISTED},
                "user": {"type": "string"}, "id": {"type": "string"},
                "position": {"type": "string"},
            },
        },
    }


def routes(settings: Settings) -> list[Route]:
    return [
        Route("DELETE", "/v1/scheduled/{cancel_key}", cancel_scheduled, "cancel_scheduled",
              "Cancel what is scheduled under a key and not yet due", "publishing", "service",
              {200: Reply("Every cancel is projected: nothing under the key will be sent.",
                          "ScheduleCancelled"),
               202: Reply("The cancels are logged (and already win over the scheduler); the "
                          "projector has not applied them all yet.", "ScheduleCancelled")},
              params=(Param("cancel_key", "path", KEY, True),
                      Param("user", "query", USER, False,
                            "Cancel only this user's schedules, without the routing lookup.")),
              errors=(404, 422),
              description=(
                  "Appends one schedule.cancelled per user with a schedule under the key "
                  "(found through the routing index the producer keeps, or the given user). "
                  "404 when nothing is scheduled under the key.")),
    ]
