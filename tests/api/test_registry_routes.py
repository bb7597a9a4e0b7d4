"""The device and contact registry and the template routes over real HTTP: everything is
an event in the log (tokens and numbers sealed), projected, and read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.consumers.templates.render import Renderer
from herald.streams.events import (
    TEMPLATES_USER,
    ContactChanged,
    DeviceRegistered,
    DeviceRemoved,
    DigestItemAdded,
    NotificationCreated,
    TemplateRegistered,
)
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient, running_api
from tests.conftest import log_entries

pytestmark = pytest.mark.usefixtures("projector")

FCM_TOKEN = "fcm-token-" + "x" * 140 + "abcdef"
APNS_TOKEN = "a1" * 32

ORDER = {
    "category": "orders", "channels": ["in_app", "sms"], "default_locale": "en",
    "locales": {
        "default": {"title": "Order {{ order_id }} shipped",
                    "body": "{{ items }} {{ plural(items, one='item', other='items') }}",
                    "channels": {"sms": {"template_code": "SMS_1",
                                         "params": {"order": "{{ order_id }}"}}}},
        "zh-CN": {"title": "订单 {{ order_id }} 已发货", "body": "共 {{ items }} 件"},
    },
    "example": {"order_id": "42", "items": 1},
}


@pytest.fixture
async def small(api_settings: Settings) -> AsyncIterator[ApiClient]:
    """The API with room for two devices per user."""
    async with running_api(api_settings.replace(max_devices=2)) as client:
        yield client


async def _raw_log(redis: Any, settings: Settings, user: str) -> bytes:
    stream = Keys(settings.prefix).stream(partition_for(user, settings.partitions))
    return b"".join(f for _, fields in await redis.xrange(stream) for f in fields.values())


async def test_devices_are_registered_listed_and_removed_as_sealed_events(
        small: ApiClient, redis: Any, api_settings: Settings) -> None:
    token = small.token("dora")
    first = await small.post("/v1/users/me/devices", auth=token,
                             json={"platform": "fcm", "token": FCM_TOKEN})
    assert first.status == 201, first.body
    did = first.body["id"]
    again = await small.post("/v1/users/dora/devices",
                             json={"platform": "fcm", "token": FCM_TOKEN})
    assert again.status == 201 and again.body["id"] == did  # the same device, renewed
    second = await small.post("/v1/users/dora/devices", json={
        "platform": "apns", "token": APNS_TOKEN, "app": "com.example.shop"})
    assert second.status == 201 and second.body["id"] != did
    third = await small.post("/v1/users/dora/devices",
                             json={"platform": "apns", "token": "b2" * 32})
    assert third.status == 409 and third.content_type == "application/problem+json"
    listed = await small.get("/v1/users/me/devices", auth=token)
    assert listed.status == 200
    devices = listed.body["devices"]
    assert [d["platform"] for d in devices] == ["fcm", "apns"]
    assert devices[0]["token_hint"] == "…abcdef" and FCM_TOKEN not in str(listed.body)
    assert (await small.get("/v1/users/erin/devices", auth=token)).status == 403
    bad = await small.post("/v1/users/dora/devices", json={"platform": "hms", "token": "t"})
    assert bad.status == 422
    removed = await small.delete(f"/v1/users/me/devices/{did}", auth=token)
    assert removed.status == 200, removed.body
    assert (await small.delete(f"/v1/users/dora/devices/{did}")).status == 404
    left = (await small.get("/v1/users/dora/devices")).body["devices"]
    assert [d["id"] for d in left] == [second.body["id"]]
    # Events in the log, the tokens sealed (never in clear in the stream).
    entries = await log_entries(redis, api_settings,
                                partition_for("dora", api_settings.partitions))
    kinds = [type(e.payload) for e in entries if e.user == "dora"]
    assert kinds == [DeviceRegistered, DeviceRegistered, DeviceRegistered, DeviceRemoved]
    opened = [e.payload for e in entries if isinstance(e.payload, DeviceRegistered)]
    assert opened[0].token == FCM_TOKEN and opened[2].app == "com.example.shop"
    raw = await _raw_log(redis, api_settings, "dora")
    assert FCM_TOKEN.encode() not in raw and APNS_TOKEN.encode() not in raw


async def test_contacts_set_one_field_validated_and_sealed(
        api: ApiClient, redis: Any, api_settings: Settings) -> None:
    await api.call("PUT", "/v1/users/carl/profile", json={"email": "carl@example.com"})
    put = await api.call("PUT", "/v1/users/carl/contacts",
                         json={"kind": "phone", "value": "+8613912345678"})
    assert put.status == 200, put.body
    assert put.body["phone"] == "+8613912345678" and put.body["email"] == "carl@example.com"
    locale = await api.call("PUT", "/v1/users/carl/contacts",
                            json={"kind": "locale", "value": "zh-CN"})
    assert locale.body["locale"] == "zh-CN"
    wrong = await api.call("PUT", "/v1/users/carl/contacts",
                           json={"kind": "phone", "value": "13912345678"})
    assert wrong.status == 422 and [e["path"] for e in wrong.body["errors"]] == ["value"]
    by_user = await api.call("PUT", "/v1/users/me/contacts", auth=api.token("carl"),
                             json={"kind": "phone", "value": "+8613912345678"})
    assert by_user.status == 403
    gone = await api.delete("/v1/users/carl/contacts/phone")
    assert gone.status == 200 and gone.body["phone"] is None
    assert gone.body["locale"] == "zh-CN" and gone.body["email"] == "carl@example.com"
    entries = await log_entries(redis, api_settings,
                                partition_for("carl", api_settings.partitions))
    changes = [e.payload for e in entries if isinstance(e.payload, ContactChanged)]
    assert [(c.kind, c.value) for c in changes] == [
        ("phone", "+8613912345678"), ("locale", "zh-CN"), ("phone", None)]
    assert b"8613912345678" not in await _raw_log(redis, api_settings, "carl")


async def test_templates_are_versioned_checked_at_registration_and_previewed(
        api: ApiClient, redis: Any, api_settings: Settings) -> None:
    created = await api.call("PUT", "/v1/templates/order-shipped", json=ORDER)
    assert created.status == 201 and created.body["version"] == 1, created.body
    same = await api.call("PUT", "/v1/templates/order-shipped", json=ORDER)
    assert same.status == 200 and same.body == {"id": "order-shipped", "version": 1,
                                                "created": False, "status": "projected"}
    changed = {**ORDER, "category": "shipping"}
    second = await api.call("PUT", "/v1/templates/order-shipped", json=changed)
    assert second.status == 201 and second.body["version"] == 2
    latest = await api.get("/v1/templates/order-shipped")
    assert latest.body["version"] == 2 and latest.body["definition"] == changed
    first = await api.get("/v1/templates/order-shipped?version=1")
    assert first.body["version"] == 1 and first.body["latest"] == 2
    assert first.body["definition"] == ORDER
    assert (await api.get("/v1/templates/order-shipped?version=3")).status == 404
    assert (await api.get("/v1/templates")).body["templates"] == [
        {"id": "order-shipped", "latest": 2}]
    assert (await api.get("/v1/templates", auth=api.token("u"))).status == 403
    # A template error is found here, naming the place — never at send time.
    broken = {**ORDER, "locales": {**ORDER["locales"],
                                   "zh-CN": {"title": "订单 {{ order_id }"}}}
    refused = await api.call("PUT", "/v1/templates/order-shipped", json=broken)
    assert refused.status == 422 and "locales.zh-CN.title" in refused.body["detail"]
    undefined = {**ORDER, "example": {"items": 1}}
    refused = await api.call("PUT", "/v1/templates/order-shipped", json=undefined)
    assert refused.status == 422 and "order_id" in refused.body["detail"]
    # Preview: a registered version with the locale fallback, or a draft.
    zh = await api.post("/v1/templates/order-shipped/preview",
                        json={"locale": "zh-CN", "data": {"order_id": "7", "items": 3}})
    assert zh.status == 200, zh.body
    assert (zh.body["locale"], zh.body["title"], zh.body["body"]) == (
        "zh-CN", "订单 7 已发货", "共 3 件")
    assert zh.body["variants"] == {"sms": {"template_code": "SMS_1", "params": {"order": "7"}}}
    plain = await api.post("/v1/templates/order-shipped/preview",
                           json={"locale": "zh", "version": 1})
    assert (plain.body["locale"], plain.body["title"], plain.body["body"]) == (
        "default", "Order 42 shipped", "1 item")
    draft = await api.post("/v1/templates/new-one/preview", json={"definition": broken})
    assert draft.status == 422 and "definition.locales.zh-CN.title" in draft.body["detail"]
    assert (await api.post("/v1/templates/nothing/preview", json={})).status == 404
    # Every version is an event of the reserved user, in its partition.
    entries = await log_entries(redis, api_settings,
                                partition_for(TEMPLATES_USER, api_settings.partitions))
    versions = [(e.payload.template_id, e.payload.version) for e in entries
                if isinstance(e.payload, TemplateRegistered)]
    assert versions == [("order-shipped", 1), ("order-shipped", 2)]


async def test_publish_renders_in_the_users_locale_and_records_the_version(
        api: ApiClient, redis: Any, api_settings: Settings) -> None:
    assert (await api.call("PUT", "/v1/templates/order-shipped", json=ORDER)).status == 201
    await api.call("PUT", "/v1/users/lin/contacts", json={"kind": "locale", "value": "zh-CN"})
    published = await api.post("/v1/notifications", json={
        "user": "lin", "template": "order-shipped", "data": {"order_id": "88", "items": 2}})
    assert published.status == 201, published.body
    english = await api.post("/v1/notifications", json={
        "user": "lin", "template": "order-shipped", "locale": "en",
        "data": {"order_id": "89", "items": 1}})
    assert english.status == 201
    # A new version changes what the next publish renders, never what was recorded.
    newer = {**ORDER, "locales": {**ORDER["locales"],
                                  "zh-CN": {"title": "新版 {{ order_id }}"}}}
    assert (await api.call("PUT", "/v1/templates/order-shipped", json=newer)).status == 201
    inbox = await api.get(f"/v1/users/lin/inbox?after={published.body['position']}&wait=5")
    titles = [i["title"] for i in (await api.get("/v1/users/lin/inbox")).body["items"]]
    assert inbox.status == 200 and titles == ["Order 89 shipped", "订单 88 已发货"]
    entries = await log_entries(redis, api_settings,
                                partition_for("lin", api_settings.partitions))
    created = [e.payload for e in entries if isinstance(e.payload, NotificationCreated)]
    assert [c.template for c in created] == [
        {"id": "order-shipped", "version": 1, "locale": "zh-CN"},
        {"id": "order-shipped", "version": 1, "locale": "default"}]
    assert created[0].category == "orders" and created[0].channels == ("in_app", "sms")
    assert created[0].variants == {"sms": {"template_code": "SMS_1",
                                           "params": {"order": "88"}}}
    # Rendering the recorded version again (a replay) gives the recorded text.
    recorded = (await api.get("/v1/templates/order-shipped?version=1")).body["definition"]
    again = Renderer().render(recorded, created[0].template["locale"],  # type: ignore[index]
                              created[0].data)
    assert (again.title, again.body, again.variants) == (
        created[0].title, created[0].body, created[0].variants)
    # Data the template cannot render with: 422 at publish; unknown template: 404.
    missing = await api.post("/v1/notifications", json={
        "user": "lin", "template": "order-shipped", "data": {"items": 2}})
    assert missing.status == 422 and "order_id" in missing.body["detail"]
    unknown = await api.post("/v1/notifications", json={"user": "lin", "template": "nope"})
    assert unknown.status == 404
    batch = await api.post("/v1/notifications/batch", json={"notifications": [
        {"user": "lin", "template": "nope"},
        {"user": "lin", "template": "order-shipped", "data": {"order_id": "1", "items": 1}}]})
    assert [r["status"] for r in batch.body["results"]] == [422, 201]
    both = await api.post("/v1/notifications", json={
        "user": "lin", "template": "order-shipped", "title": "x"})
    assert both.status == 422


async def test_channels_without_the_inbox_and_critical_priority(
        api: ApiClient, redis: Any, api_settings: Settings) -> None:
    code = await api.post("/v1/notifications", json={
        "user": "otto", "title": "Your code is 314159", "channels": ["sms"],
        "priority": "critical", "category": "otp"})
    assert code.status == 201 and code.body["kind"] == "created"
    urgent = await api.post("/v1/notifications", json={
        "user": "otto", "title": "Account locked", "priority": "critical",
        "digest_key": "daily"})
    assert urgent.status == 201 and urgent.body["kind"] == "created"  # never digested
    bulk = await api.post("/v1/notifications", json={
        "user": "otto", "title": "Sale", "digest_key": "daily"})
    assert bulk.body["kind"] != "created"
    bad = await api.post("/v1/notifications", json={"user": "otto", "title": "x",
                                                     "priority": "urgent"})
    assert bad.status == 422
    page = await api.get(f"/v1/users/otto/inbox?after={code.body['position']}&wait=5")
    assert [i["title"] for i in page.body["items"]] == ["Account locked"]
    titles = [i["title"] for i in (await api.get("/v1/users/otto/inbox")).body["items"]]
    assert "Your code is 314159" not in titles
    entries = await log_entries(redis, api_settings,
                                partition_for("otto", api_settings.partitions))
    payloads = [e.payload for e in entries]
    assert payloads[0].inbox is False and payloads[0].critical  # type: ignore[attr-defined]
    assert isinstance(payloads[1], NotificationCreated) and payloads[1].in_inbox
    assert isinstance(payloads[2], DigestItemAdded) and payloads[2].priority is None
