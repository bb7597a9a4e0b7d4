"""Tenants: a key or token of tenant B can neither read nor write tenant A (a BOLA
matrix over every route of the OpenAPI document), equal names in two tenants are two
users, and per-tenant rate limits and preference defaults apply."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from herald.api.auth import mint_token
from herald.consumers.delivery.policy import allowed, with_defaults
from herald.streams import tenants
from herald.streams.settings import Settings, tenant_preferences
from tests.api.conftest import SECRET, SERVICE_KEY, ApiClient, running_api
from tests.api.test_inbox_e2e import wait_inbox

KEY_A, KEY_B = "key-of-acme-0123456789", "key-of-beta-0123456789"
SECRET_A = "acme's secret 🔒"


@pytest.fixture
async def tenanted(api_settings: Settings) -> AsyncIterator[ApiClient]:
    settings = api_settings.replace(api_keys=(SERVICE_KEY, f"acme:{KEY_A}", f"beta:{KEY_B}"))
    async with running_api(settings) as api:
        yield api


def test_keys_and_ids() -> None:
    assert tenants.parse_key("acme:k:1") == ("acme", "k:1")
    assert tenants.parse_key("Plain:key") == ("", "Plain:key")  # not a tenant name
    assert tenants.parse_key("plainkey") == ("", "plainkey")
    assert tenants.scoped("", "alice") == "alice"
    assert tenants.split(tenants.scoped("acme", "a\u00e9")) == ("acme", "a\u00e9")
    assert tenants.record_key("acme\x1falice", "k") != tenants.record_key("beta\x1falice", "k")


def test_tenant_preference_defaults_apply_under_the_users_own() -> None:
    defaults = tenant_preferences('{"acme": {"marketing": {"sms": false}}}')["acme"]
    assert not allowed(with_defaults({}, defaults), "marketing", "sms")
    assert allowed(with_defaults({"marketing": {"sms": True}}, defaults), "marketing", "sms")
    assert allowed(with_defaults({}, defaults), "orders", "sms")
    with pytest.raises(ValueError):
        tenant_preferences('{"acme": {"marketing": {"sms": "no"}}}')


@pytest.mark.usefixtures("projector")
async def test_a_tenant_never_reaches_another(tenanted: ApiClient) -> None:
    api = tenanted
    a = await publish(api, KEY_A, title=SECRET_A, idempotency_key="same-key")
    nid_a = a.body["id"]
    scheduled = await publish(api, KEY_A, title=SECRET_A, delay_seconds=600,
                              cancel_key="order-1")
    await api.call("PUT", "/v1/users/alice/profile", auth=KEY_A,
                   json={"email": "alice@acme.example"})
    # The same user name and idempotency key in beta: another user, a fresh append.
    b = await publish(api, KEY_B, title="beta's own", idempotency_key="same-key")
    assert b.status == 201 and b.body["id"] != nid_a and b.body["duplicate"] is False
    page_a = await wait_inbox(api, "alice", 1, auth=KEY_A)
    page_b = await wait_inbox(api, "alice", 1, auth=KEY_B)
    assert [i["title"] for i in page_a["items"]] == [SECRET_A]
    assert [i["title"] for i in page_b["items"]] == ["beta's own"]
    default = await api.get("/v1/users/alice/inbox")  # the default tenant's alice: empty
    assert default.body["items"] == []

    token_b = mint_token(SECRET, "alice", 600, tenant="beta")
    ids = {"{id}": nid_a, "{user}": "alice", "{cancel_key}": "order-1"}
    doc = (await api.get("/openapi.json")).body
    checked = 0
    for path, ops in doc["paths"].items():
        if not path.startswith("/v1/") or path.startswith("/v1/dev/"):
            continue
        for method, op in ops.items():
            if method not in ("get", "post", "put", "delete") or op["operationId"].startswith(
                    "live_"):
                continue
            url = path
            for name, value in ids.items():
                url = url.replace(name, quote(value, safe=""))
            if op["operationId"] == "notification_by_event":
                url += "?source=s&id=i"
            for who in (KEY_B, token_b):
                answer = await api.call(method.upper(), url, auth=who, json=_body(op))
                checked += 1
                assert SECRET_A not in answer.raw.decode(), (method, path)
                assert "alice@acme" not in answer.raw.decode(), (method, path)
                assert answer.status < 500, (method, path, answer.body)
                if "{id}" in path or "{cancel_key}" in path or path == "/v1/admin/status":
                    assert answer.status >= 400, (method, path, who, answer.body)
    assert checked > 40
    # Nothing of acme's changed: its item, its schedule and its profile are intact.
    status = await api.get(f"/v1/notifications/{scheduled.body['id']}", auth=KEY_A)
    assert status.body["status"] == "scheduled" and status.body["user"] == "alice"
    item = await api.get(f"/v1/notifications/{nid_a}", auth=KEY_A)
    assert item.status == 200 and item.body["channels"]["in_app"]["in_inbox"] is True
    assert (await api.get(f"/v1/notifications/{nid_a}", auth=KEY_B)).status == 404
    assert (await api.get(f"/v1/notifications/{nid_a}")).status == 404  # default tenant
    profile = await api.get("/v1/users/alice/profile", auth=KEY_A)
    assert profile.body["email"] == "alice@acme.example" and profile.body["user"] == "alice"
    # A tenant's own user token reaches only its own inbox.
    token_a = mint_token(SECRET, "alice", 600, tenant="acme")
    mine = await api.get("/v1/users/me/inbox", auth=token_a)
    assert [i["title"] for i in mine.body["items"]] == [SECRET_A]


async def publish(api: ApiClient, key: str, **fields: Any) -> Any:
    answer = await api.post("/v1/notifications", auth=key, json={"user": "alice", **fields})
    assert answer.status in (200, 201), answer.body
    return answer


def _body(op: dict[str, Any]) -> Any:
    """A schema-valid body for the routes that need one."""
    name = op.get("operationId")
    return {"publish": {"user": "alice", "title": "x"},
            "publish_batch": {"notifications": [{"user": "alice", "title": "x"}]},
            "inbox_bulk": {"action": "read"}, "inbox_snooze": {"seconds": 60},
            "preferences_put": {"preferences": {}},
            "events_publish": None}.get(str(name), {})


async def test_per_tenant_rate_limits(api_settings: Settings) -> None:
    settings = api_settings.replace(api_keys=(f"acme:{KEY_A}", f"beta:{KEY_B}"),
                                    tenant_rates=(("acme", "3/m"),), api_rate_key="off")
    async with running_api(settings) as api:
        statuses = [(await api.get("/v1/users/x/unread_count", auth=KEY_A)).status
                    for _ in range(5)]
        assert statuses[:3] == [200] * 3 and statuses[3:] == [429, 429]
        assert (await api.get("/v1/users/x/unread_count", auth=KEY_B)).status == 200
        limited = await api.get("/v1/users/x/unread_count", auth=KEY_A)
        assert "tenant" in orjson.loads(limited.raw)["detail"]
    await asyncio.sleep(0)
