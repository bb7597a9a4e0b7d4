"""The SSRF guard at acceptance: a profile or notification naming an internal webhook
destination is refused with 422 before anything is appended."""

from __future__ import annotations

import pytest

from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_api

INTERNAL = ["http://127.0.0.1:8080/internal-admin", "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:10.0.0.1]/", "http://localhost:9000/", "http://metadata.internal/"]
SECRET = "whsec_aGVyYWxkLXRlc3Qtd2ViaG9vay1zZWNyZXQ="


@pytest.fixture
async def guarded(api_settings: Settings) -> ApiClient:  # type: ignore[misc]
    async with running_api(api_settings.replace(webhook_allow_cidrs="")) as client:
        yield client


@pytest.mark.parametrize("url", INTERNAL)
async def test_a_profile_aimed_inside_is_refused(guarded: ApiClient, url: str) -> None:
    answer = await guarded.call("PUT", "/v1/users/alice/profile",
                                json={"webhook_url": url, "webhook_secret": SECRET})
    assert answer.status == 422, answer.body
    assert answer.body["errors"][0]["path"] == "webhook_url"
    assert "destination refused" in answer.body["detail"]
    assert SECRET not in answer.raw.decode()
    profile = await guarded.get("/v1/users/alice/profile")
    assert profile.body["webhook_url"] is None


@pytest.mark.parametrize("url", INTERNAL)
async def test_a_notification_aimed_inside_is_refused(guarded: ApiClient, url: str) -> None:
    answer = await guarded.post("/v1/notifications", json={
        "user": "alice", "title": "t", "channels": ["webhook"],
        "recipients": {"webhook": url}})
    assert answer.status == 422, answer.body
    assert "recipients.webhook" in answer.body["detail"]
    batch = await guarded.post("/v1/notifications/batch", json={"notifications": [
        {"user": "alice", "title": "t", "channels": ["webhook"], "recipients": {"webhook": url}},
        {"user": "alice", "title": "ok"}]})
    assert [r["status"] for r in batch.body["results"]] == [422, 201]


async def test_public_destinations_and_allowed_ranges_are_accepted(
        api_settings: Settings) -> None:
    async with running_api(api_settings.replace(webhook_allow_cidrs="127.0.0.1/32")) as api:
        answer = await api.call("PUT", "/v1/users/alice/profile",
                                json={"webhook_url": "http://127.0.0.1:8080/hook",
                                      "webhook_secret": SECRET})
        assert answer.status in (200, 202), answer.body
        answer = await api.post("/v1/notifications", json={
            "user": "alice", "title": "t", "channels": ["webhook"],
            "recipients": {"webhook": "https://hooks.example.com/h"}})
        assert answer.status == 201, answer.body
