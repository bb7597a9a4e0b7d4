"""Delivery routes over real HTTP: preferences, profile, and status by id."""

from __future__ import annotations

from typing import Any

import pytest

from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_role
from tests.consumers.channels.conftest import (
    WEBHOOK_SECRET,
    Reply,
    WebhookReceiver,
    webhook_receiver,  # noqa: F401 (the fixture)
)

pytestmark = pytest.mark.usefixtures("projector")


async def test_preferences_round_trip_and_users_reach_only_their_own(api: ApiClient) -> None:
    empty = await api.get("/v1/users/una/preferences")
    assert empty.status == 200 and empty.body["preferences"] == {}
    prefs = {"*": {"sms": False}, "orders": {"sms": True, "email": False}}
    token = api.token("una")
    put = await api.call("PUT", "/v1/users/me/preferences", auth=token,
                         json={"preferences": prefs})
    assert put.status == 200, put.body
    assert put.body["preferences"] == prefs and put.body["updated_at"]
    assert (await api.get("/v1/users/una/preferences")).body["preferences"] == prefs
    other = await api.call("PUT", "/v1/users/vic/preferences", auth=token,
                           json={"preferences": {}})
    assert other.status == 403
    bad = await api.call("PUT", "/v1/users/una/preferences",
                         json={"preferences": {"orders": {"pigeon": True}}})
    assert bad.status == 422 and bad.body["errors"]


async def test_profile_is_set_by_services_and_hides_the_secret(api: ApiClient) -> None:
    body = {"phone": "+8613800000000", "webhook_url": "https://hooks.example/w",
            "webhook_secret": WEBHOOK_SECRET}
    put = await api.call("PUT", "/v1/users/wen/profile", json=body)
    assert put.status == 200, put.body
    doc = put.body
    assert doc["phone"] == "+8613800000000" and doc["email"] is None
    assert doc["webhook_secret_set"] is True and WEBHOOK_SECRET not in str(doc)
    own = await api.get("/v1/users/me/profile", auth=api.token("wen"))
    assert own.status == 200 and own.body == doc
    by_user = await api.call("PUT", "/v1/users/me/profile", auth=api.token("wen"), json=body)
    assert by_user.status == 403
    invalid = await api.call("PUT", "/v1/users/wen/profile", json={"phone": "12345"})
    assert invalid.status == 422
    cleared = await api.call("PUT", "/v1/users/wen/profile", json={"email": "w@example.com"})
    assert cleared.body["phone"] is None and cleared.body["email"] == "w@example.com"


async def test_status_by_id_shows_each_channel(
    api: ApiClient, api_settings: Settings, redis: Any,
    webhook_receiver: WebhookReceiver,  # noqa: F811 (pytest fixture)
) -> None:
    webhook_receiver.script(Reply(400, {"error": "nope"}))
    await api.call("PUT", "/v1/users/xia/profile",
                   json={"webhook_url": webhook_receiver.url + "/hook",
                         "webhook_secret": WEBHOOK_SECRET})
    published = await api.publish("xia", "order paid", channels=["in_app", "webhook", "sms"],
                                  category="orders")
    nid = published.body["id"]
    async with running_role("webhook", api_settings, redis):
        for _ in range(500):
            answer = await api.get(f"/v1/notifications/{nid}")
            if answer.status == 200 and answer.body["channels"]["webhook"]["state"] != "pending":
                break
    assert answer.status == 200, answer.body
    doc = answer.body
    assert doc["title"] == "order paid" and doc["user"] == "xia" and doc["category"] == "orders"
    assert doc["channels"]["in_app"]["state"] == "sent"
    hook = doc["channels"]["webhook"]
    assert hook["state"] == "failed" and hook["attempts"] == 1
    assert hook["last_error"].startswith("HTTP 400")
    assert doc["channels"]["sms"] == {  # no sms worker ran: still pending
        "state": "pending", "attempts": 0, "last_error": None, "updated_at": doc["created_at"],
        "last_attempt_at": None, "sent_at": None, "next_attempt_at": None}
    user = await api.get(f"/v1/notifications/{nid}", auth=api.token("xia"))
    assert user.status == 403
    missing = await api.get("/v1/notifications/01HZX3J4K5M6N7P8Q9R0S1T2V3")
    assert missing.status == 404
    assert (await api.get("/v1/notifications/not-an-id")).status == 404
