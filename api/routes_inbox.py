"""Inbox routes: the list, the unread count, and the actions on items.

Reads go through the projector's ``InboxQueries``. Actions (read, unread,
archive, delete, read_all) append one event each, then wait at most
``HERALD_ACTION_WAIT`` until it is projected and answer with the state as it now
is (read-your-writes); when the projector is behind they answer 202 with the
event's position, and the event still applies, in order.

The list long-polls with ``after`` and ``wait``: it answers as soon as an item
newer than ``after`` exists, else an empty page when ``wait`` runs out
(api/longpoll.py); ``wait`` without ``after`` waits for an item newer than the
newest the inbox holds when the request arrives, then answers the page as usual.

No route tells a caller anything about another user's items: a user token is
refused (403) for another ``{user}`` before any lookup, and an item that is not in
this user's inbox is 404 whether or not it exists elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from herald.api.appending import accepted_body, append_and_wait
from herald.api.auth import require_service
from herald.api.context import QUERIES, REDIS, SETTINGS
from herald.api.errors import NotFound, Unavailable, Unprocessable, field_error
from herald.api.jsonio import json_response
from herald.api.longpoll import wait_newer
from herald.api.routing import ID_PARAM, USER_PARAM, Call, Param, Reply, Route
from herald.api.schemas import (
    POSITION,
    POSITION_PATTERN,
    STATUSES,
)
from herald.consumers.errors import RetentionError
from herald.consumers.projection.queries import MAX_LIMIT
from herald.consumers.retention.as_of import InboxAsOf
from herald.streams.errors import ValidationError
from herald.streams.events import (
    AllRead,
    NotificationArchived,
    NotificationDeleted,
    NotificationRead,
    NotificationUnread,
)
from herald.streams.settings import Settings

INBOX_AS_OF: web.AppKey[InboxAsOf] = web.AppKey("inbox_as_of")
AS_OF_GATE: web.AppKey[asyncio.Semaphore] = web.AppKey("as_of_gate")
AS_OF_CONCURRENCY = 2  # rebuilds at once per process (each reads a partition's log range)
LONGPOLL_MAX_S = 25  # and below HERALD_REQUEST_TIMEOUT, which bounds every request


async def inbox(call: Call) -> web.Response:
    q = call.query
    if q["as_of"] is not None:
        return await _as_of(call)
    if q["wait"]:  # long-poll: hold until an item newer than `after` exists (api/longpoll.py)
        after = q["after"]
        if after is None:  # newer than what the inbox holds now
            newest = await call.app[QUERIES].page(call.owner, limit=1)
            after = newest.items[0]["position"] if newest.items else "0-0"
        await wait_newer(call, call.owner, after, q["wait"])
    try:
        page = await call.app[QUERIES].page(
            call.owner, status=q["status"], limit=q["limit"], cursor=q["cursor"], after=q["after"]
        )
    except ValidationError as exc:  # a cursor or position the projector cannot read
        path = f"query.{exc.field}"
        raise Unprocessable(f"{path}: {exc.message}", errors=[field_error(path, exc.message)]
                            ) from exc
    return json_response({"items": page.items, "next_cursor": page.next_cursor,
                          "unread_count": page.unread_count,
                          "unseen_count": page.unseen_count})


async def _as_of(call: Call) -> web.Response:
    """The inbox as it was at ``as_of`` (service keys only): consumers/retention/as_of.py."""
    q = call.query
    assert call.principal is not None
    require_service(call.principal)
    try:  # `wait` is ignored: the past does not change
        async with call.app[AS_OF_GATE]:
            page, at = await call.app[INBOX_AS_OF].page(
                call.owner, q["as_of"], status=q["status"], limit=q["limit"], cursor=q["cursor"],
                after=q["after"])
    except ValidationError as exc:
        path = f"query.{exc.field}"
        raise Unprocessable(f"{path}: {exc.message}", errors=[field_error(path, exc.message)]
                            ) from exc
    except RetentionError as exc:  # the copy it was built in was dropped: ask again
        raise Unavailable(str(exc), retry_after=1) from exc
    return json_response({"items": page.items, "next_cursor": page.next_cursor,
                          "unread_count": page.unread_count, "as_of": at})


async def unread_count(call: Call) -> web.Response:
    return json_response({"unread_count": await call.app[QUERIES].unread_count(call.owner)})


async def _existing(call: Call) -> str:
    notification_id: str = call.path["id"]
    if await call.app[QUERIES].item(call.owner, notification_id) is None:
        raise NotFound("no item with this id in this inbox")
    return notification_id


def _action(
    kind: type[NotificationRead | NotificationUnread | NotificationArchived],
) -> Callable[[Call], Awaitable[web.Response]]:
    async def handler(call: Call) -> web.Response:
        nid = await _existing(call)
        appended, projected = await append_and_wait(call.app, call.owner, kind(notification_id=nid))
        if not projected:
            return json_response(accepted_body(appended, nid), 202)
        item = await call.app[QUERIES].item(call.owner, nid)
        if item is None:  # deleted by a concurrent request in the meantime
            raise NotFound("the item is no longer in this inbox")
        return json_response(item)

    return handler


async def delete(call: Call) -> web.Response:
    nid = await _existing(call)
    appended, projected = await append_and_wait(call.app, call.owner,
                                                NotificationDeleted(notification_id=nid))
    if not projected:
        return json_response(accepted_body(appended, nid), 202)
    return json_response({"id": nid, "deleted": True, "position": appended.position})


async def read_all(call: Call) -> web.Response:
    up_to = (call.body or {}).get("up_to")
    appended, projected = await append_and_wait(call.app, call.owner, AllRead(up_to=up_to))
    if not projected:
        return json_response(accepted_body(appended), 202)
    count = await call.app[QUERIES].unread_count(call.owner)
    return json_response({"unread_count": count, "position": appended.position})


def routes(settings: Settings) -> list[Route]:
    tag = "inbox"
    base = "/v1/users/{user}"
    max_limit = min(settings.max_page, MAX_LIMIT)
    default_limit = min(50, max_limit)
    max_wait = max(1, min(LONGPOLL_MAX_S, int(settings.request_timeout_s) - 1))
    list_params = (
        USER_PARAM,
        Param("status", "query", {"enum": list(STATUSES), "default": "all"}),
        Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": max_limit,
                                 "default": default_limit}),
        Param("cursor", "query", {"type": "string", "pattern": POSITION_PATTERN},
              description="next_cursor of the previous page (older items)."),
        Param("after", "query", POSITION,
              description="Only items newer than this position."),
        Param("wait", "query", {"type": "number", "minimum": 0, "maximum": max_wait,
                                "default": 0},
              description="Long-poll: hold the request up to this many seconds until "
                          "an item newer than `after` exists (without `after`: newer than "
                          "the newest item when the request arrives); then answer at once. "
                          "With `after`, the page is empty when the time is up."),
        Param("as_of", "query", {"type": "string", "anyOf": [
                  {"pattern": POSITION_PATTERN}, {"format": "date-time"}]},
              description="Service keys only: the inbox exactly as it was at this log "
                          "position (ms-seq) or RFC 3339 time, rebuilt from snapshot, "
                          "archive and log (`cursor` and `after` apply to it; `wait` is "
                          "ignored: the past does not change)."),
    )
    item_params = (USER_PARAM, ID_PARAM)
    item_reply = {200: Reply("The item as it now is.", "InboxItem"),
                  202: Reply("Logged, not yet projected.", "Accepted")}

    def action(verb: str, kind: Any, summary: str) -> Route:
        return Route("POST", f"{base}/inbox/{{id}}/{verb}", _action(kind), f"inbox_{verb}",
                     summary, tag, "user", item_reply, params=item_params, errors=(404, 422))

    return [
        Route("GET", f"{base}/inbox", inbox, "inbox_list", "The inbox, newest first", tag,
              "user", {200: Reply("One page of items.", "InboxPage")}, params=list_params,
              errors=(403, 422)),
        Route("GET", f"{base}/unread_count", unread_count, "inbox_unread_count",
              "Number of unread items", tag, "user",
              {200: Reply("The unread count.", "UnreadCount")}, params=(USER_PARAM,),
              errors=(422,)),
        action("read", NotificationRead, "Mark an item read"),
        action("unread", NotificationUnread, "Mark an item unread"),
        action("archive", NotificationArchived, "Archive an item"),
        Route("POST", f"{base}/inbox/read_all", read_all, "inbox_read_all",
              "Mark everything up to now (or up_to) read", tag, "user",
              {200: Reply("Projected; the unread count as it now is.", "AllRead"),
               202: Reply("Logged, not yet projected.", "Accepted")},
              params=(USER_PARAM,), body="ReadAllRequest", body_required=False,
              errors=(400, 413, 422)),
        Route("DELETE", f"{base}/inbox/{{id}}", delete, "inbox_delete",
              "Remove an item from the inbox", tag, "user",
              {200: Reply("Removed.", "Deleted"), 202: Reply("Logged, not yet projected.",
                                                              "Accepted")},
              params=item_params, errors=(404, 422)),
    ]


def setup(app: web.Application) -> None:
    """The as-of rebuilder once the app's Redis client exists (one at a time per process)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[INBOX_AS_OF] = InboxAsOf(app[REDIS], app[SETTINGS])
        app[AS_OF_GATE] = asyncio.Semaphore(AS_OF_CONCURRENCY)
        yield

    app.cleanup_ctx.append(context)
