"""``DELETE /v1/users/{user}`` (service keys): erase a user (streams/erasure.py).

Answer: 200 ``{"user", "erased": true, "position", "status": "projected"}`` once the
``user.erased`` event is projected within ``HERALD_ACTION_WAIT``, else 202 with
``status: accepted`` (the key is already gone, the projection follows in order).
"""

from __future__ import annotations

from aiohttp import web

from herald.api.context import PRODUCER, QUERIES, SETTINGS
from herald.api.jsonio import json_response
from herald.api.routing import USER_PARAM, Call, Reply, Route
from herald.streams import tenants
from herald.streams.erasure import erase_user
from herald.streams.settings import Settings


async def erase(call: Call) -> web.Response:
    app = call.app
    user = call.owner
    appended, _had_key = await erase_user(app[PRODUCER], user)
    projected = await app[QUERIES].wait_for(appended.partition, appended.position,
                                            app[SETTINGS].action_wait_s)
    body = {"user": tenants.plain(user), "erased": True, "position": appended.position,
            "status": "projected" if projected else "accepted"}
    return json_response(body, 200 if projected else 202)


def schemas(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        "Erased": {
            "type": "object",
            "required": ["user", "erased", "position", "status"],
            "properties": {
                "user": {"type": "string"}, "erased": {"type": "boolean", "const": True},
                "position": {"type": "string"},
                "status": {"type": "string", "enum": ["projected", "accepted"]},
            },
        },
    }


def routes(settings: Settings) -> list[Route]:
    return [
        Route("DELETE", "/v1/users/{user}", erase, "user_erase",
              "Erase a user: their content becomes unreadable everywhere, their state goes",
              "users", "service",
              {200: Reply("Erased and projected.", "Erased"),
               202: Reply("The data key is erased; the projection follows.", "Erased")},
              params=(USER_PARAM,), errors=(422,),
              description="Deletes the user's data key (every sealed copy of their "
                          "content, in Redis, snapshots and archive segments, becomes "
                          "unreadable), then appends `user.erased`, which removes their "
                          "inbox, read state, preferences, profile, pending schedules and "
                          "digests. Replay honours it. Calling it again is harmless."),
    ]
