"""``DELETE /v1/users/{user}`` (service keys): erase a user (streams/erasure.py);
``POST /v1/users/{user}/sign_out``: revoke every token of the user issued until now.

Answer: 200 ``{"user", "erased": true, "position", "status": "projected"}`` once the
``user.erased`` event is projected within ``HERALD_ACTION_WAIT``, else 202 with
``status: accepted`` (the key is already gone, the projection follows in order).
"""

from __future__ import annotations

from aiohttp import web

from herald.api.appending import append_and_wait
from herald.api.context import PRODUCER, QUERIES, SETTINGS
from herald.api.jsonio import json_response
from herald.api.routing import USER_PARAM, Call, Reply, Route
from herald.streams import tenants
from herald.streams.erasure import erase_user
from herald.streams.events import TokensRevoked
from herald.streams.ids import now_ms
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


async def sign_out(call: Call) -> web.Response:
    """Appends ``user.tokens_revoked``; once projected, older tokens get 401 and the
    user's open streams close with ``token_revoked`` (api/live/)."""
    before = now_ms()
    appended, projected = await append_and_wait(call.app, call.owner, TokensRevoked(
        before=before))
    body = {"user": call.owner, "revoked_before": before, "position": appended.position,
            "status": "projected" if projected else "accepted"}
    return json_response(body, 200 if projected else 202)


def schemas(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        "SignedOut": {
            "type": "object",
            "required": ["user", "revoked_before", "position", "status"],
            "properties": {
                "user": {"type": "string"}, "revoked_before": {"type": "integer"},
                "position": {"type": "string"},
                "status": {"type": "string", "enum": ["projected", "accepted"]},
            },
        },
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
        Route("POST", "/v1/users/{user}/sign_out", sign_out, "user_sign_out",
              "Sign the user out everywhere: revoke every token issued until now",
              "users", "user",
              {200: Reply("Revoked and projected: older tokens are refused.", "SignedOut"),
               202: Reply("Logged; refused once projected.", "SignedOut")},
              params=(USER_PARAM,), errors=(422,),
              description="Appends `user.tokens_revoked`: every user token issued before "
                          "`revoked_before` (ms) gets 401 on its next request, and the "
                          "user's open SSE and WebSocket streams close with "
                          "`token_revoked`. A service key needs the `manage` scope; a "
                          "user token may sign out its own user (itself included)."),
    ]
