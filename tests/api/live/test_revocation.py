""""Sign out everywhere": tokens issued before it are refused on their next request, the
user's open SSE and WebSocket streams close within a second, newer tokens work; and
issuer, audience and clock skew are checked."""

from __future__ import annotations

import time

import jwt
import pytest

from herald.api.auth import Authenticator, mint_token
from herald.streams.settings import Settings
from tests.api.conftest import SECRET, running_api
from tests.api.live.conftest import LiveClient, ws_next

pytestmark = pytest.mark.usefixtures("projector")


async def test_sign_out_everywhere_refuses_old_tokens_and_closes_streams(
        live: LiveClient) -> None:
    old = live.token("rita")
    other = live.token("sam")
    async with live.sse("rita", token=old) as stream, live.ws("rita", token=old) as socket, \
            live.sse("sam", token=other) as bystander:
        assert (await stream.next()).type == "ready"
        assert (await ws_next(socket))["type"] == "ready"
        assert (await bystander.next()).type == "ready"
        assert (await live.get("/v1/users/me/unread_count", auth=old)).status == 200

        signed_out = await live.post("/v1/users/me/sign_out", auth=old)
        started = time.monotonic()
        assert signed_out.status == 200, signed_out.body
        assert signed_out.body["status"] == "projected"
        close = await stream.next(within=1.0)
        assert close.event == "close" and close.data["reason"] == "token_revoked"
        ws_close = await ws_next(socket, within=1.0)
        assert ws_close["type"] == "close" and ws_close["reason"] == "token_revoked"
        # then the close frame (1008; 1006 when a loaded machine tears it down first)
        assert (await ws_next(socket, within=1.0))["code"] in (1008, 1006)
        assert time.monotonic() - started < 1.0
        assert await bystander.quiet(0.3) == []  # another user's stream stays open

    refused = await live.get("/v1/users/me/unread_count", auth=old)
    assert refused.status == 401 and "revoked" in refused.body["detail"]
    fresh = live.token("rita")
    assert (await live.get("/v1/users/me/unread_count", auth=fresh)).status == 200
    assert (await live.get("/v1/users/me/unread_count", auth=other)).status == 200


async def test_a_service_key_signs_a_user_out_and_tokens_cannot_sign_out_others(
        live: LiveClient) -> None:
    token = live.token("tess")
    assert (await live.post("/v1/users/tess/sign_out", auth=live.token("ursula"))).status \
        == 403
    answer = await live.post("/v1/users/tess/sign_out")
    assert answer.status == 200 and answer.body["user"] == "tess"
    assert (await live.get("/v1/users/me/inbox", auth=token)).status == 401


async def test_issuer_audience_and_leeway_are_checked(api_settings: Settings) -> None:
    settings = api_settings.replace(token_issuer="https://id.example", token_audience="herald",
                                    token_leeway_s=5.0)
    auth = Authenticator(settings)
    good = mint_token(SECRET, "vic", 60, issuer="https://id.example", audience="herald")
    assert auth.authenticate(f"Bearer {good}").subject == "vic"
    for bad in (mint_token(SECRET, "vic", 60),
                mint_token(SECRET, "vic", 60, issuer="https://evil.example", audience="herald"),
                mint_token(SECRET, "vic", 60, issuer="https://id.example", audience="other")):
        with pytest.raises(Exception, match="invalid user token"):
            auth.authenticate(f"Bearer {bad}")
    now = time.time()
    skewed = jwt.encode({"sub": "vic", "iat": now, "exp": int(now) - 3,
                         "iss": "https://id.example", "aud": "herald"}, SECRET, "HS256")
    assert auth.authenticate(f"Bearer {skewed}").subject == "vic"  # 3 s late: within 5 s
    late = jwt.encode({"sub": "vic", "iat": now, "exp": int(now) - 30,
                       "iss": "https://id.example", "aud": "herald"}, SECRET, "HS256")
    with pytest.raises(Exception, match="expired"):
        auth.authenticate(f"Bearer {late}")
    async with running_api(settings) as api:  # the app mints and checks with them
        assert (await api.get("/v1/users/me/inbox", auth=good)).status == 200
