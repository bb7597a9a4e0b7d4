"""CORS over real HTTP: preflights answered for listed origins only, every answer (errors
and the SSE stream included) readable by a listed origin, Vary: Origin, WebSocket
handshakes from unlisted origins refused, nothing installed without the setting."""

from __future__ import annotations

import aiohttp
import pytest

from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY
from tests.api.live.conftest import running_live

APP = "http://app.example.test:3000"
EVIL = "http://evil.example.test"

pytestmark = pytest.mark.usefixtures("projector")


@pytest.fixture
def live_settings(api_settings: Settings) -> Settings:
    return api_settings.replace(api_rate_user="100000/s")


@pytest.fixture
def cors_settings(live_settings: Settings) -> Settings:
    return live_settings.replace(cors_origins=(APP, "https://other.example.test"),
                                 cors_max_age_s=120.0)


async def test_preflight(cors_settings: Settings) -> None:
    async with running_live(cors_settings) as live:
        asked = {"Origin": APP, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
        answer = await live.call("OPTIONS", "/v1/users/me/inbox/read_all", auth=None,
                                 headers=asked)
        assert answer.status == 204
        assert answer.headers["Access-Control-Allow-Origin"] == APP
        assert "POST" in answer.headers["Access-Control-Allow-Methods"]
        allowed = answer.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "last-event-id" in allowed
        assert answer.headers["Access-Control-Max-Age"] == "120"
        assert "Origin" in answer.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in answer.headers

        refused = await live.call("OPTIONS", "/v1/notifications", auth=None,
                                  headers={**asked, "Origin": EVIL})
        assert refused.status == 403 and refused.content_type == "application/problem+json"
        assert "Access-Control-Allow-Origin" not in refused.headers


async def test_answers_and_errors_are_readable_by_listed_origins(cors_settings: Settings
                                                                ) -> None:
    async with running_live(cors_settings) as live:
        token = live.token("ana")
        ok = await live.get("/v1/users/me/unread_count", auth=token, headers={"Origin": APP})
        assert ok.status == 200
        assert ok.headers["Access-Control-Allow-Origin"] == APP
        assert "X-Request-Id" in ok.headers["Access-Control-Expose-Headers"]
        assert "Origin" in ok.headers["Vary"]
        denied = await live.get("/v1/users/me/unread_count", auth="bad", headers={"Origin": APP})
        assert denied.status == 401 and denied.headers["Access-Control-Allow-Origin"] == APP
        other = await live.get("/v1/users/me/unread_count", auth=token, headers={"Origin": EVIL})
        assert other.status == 200  # served, but the browser will not let EVIL read it
        assert "Access-Control-Allow-Origin" not in other.headers
        assert "Origin" in other.headers["Vary"]
        plain = await live.get("/healthz", auth=None)
        assert "Access-Control-Allow-Origin" not in plain.headers

        async with live.streams.get(f"{live.url}/v1/users/me/events",
                                    params={"access_token": token},
                                    headers={"Origin": APP}) as stream:
            assert stream.status == 200
            assert stream.headers["Access-Control-Allow-Origin"] == APP
            assert "Origin" in stream.headers["Vary"]


async def test_websocket_origins(cors_settings: Settings) -> None:
    async with running_live(cors_settings) as live:
        token = live.token("bo")
        url = f"{live.url}/v1/users/me/ws"
        async with live.streams.ws_connect(url, params={"access_token": token},
                                           origin=APP) as socket:
            assert (await socket.receive_json())["type"] == "ready"
        same = live.url
        async with live.streams.ws_connect(url, params={"access_token": token},
                                           origin=same) as socket:
            assert (await socket.receive_json())["type"] == "ready"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await live.streams.ws_connect(url, params={"access_token": token}, origin=EVIL)
        assert refused.value.status == 403


async def test_wildcard_without_credentials(live_settings: Settings) -> None:
    async with running_live(live_settings.replace(cors_origins=("*",))) as live:
        answer = await live.get("/v1/users/me/unread_count", auth=live.token("cy"),
                                headers={"Origin": EVIL})
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        preflight = await live.call("OPTIONS", "/v1/notifications", auth=None, headers={
            "Origin": EVIL, "Access-Control-Request-Method": "POST"})
        assert preflight.status == 204


async def test_credentials_for_listed_origins(live_settings: Settings) -> None:
    async with running_live(live_settings.replace(cors_origins=(APP,), cors_credentials=True)
                            ) as live:
        answer = await live.get("/v1/notifications/x", auth=SERVICE_KEY, headers={"Origin": APP})
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
        assert answer.headers["Access-Control-Allow-Origin"] == APP


async def test_nothing_without_the_setting(live_settings: Settings) -> None:
    async with running_live(live_settings) as live:
        answer = await live.get("/v1/users/me/unread_count", auth=live.token("di"),
                                headers={"Origin": APP})
        assert "Access-Control-Allow-Origin" not in answer.headers
        preflight = await live.call("OPTIONS", "/v1/notifications", auth=None, headers={
            "Origin": APP, "Access-Control-Request-Method": "POST"})
        assert preflight.status == 405
