"""Scoped service keys: every route by every scope answers 2xx (in scope) or 403 naming
the missing scope, never 5xx; hashed keys work; several keys are valid at once; every
event appended through the API records the key id (never the key)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from herald.api.routes_devices import device_id
from herald.api.routing import ROUTES
from herald.api.scopes import ROUTE_SCOPES, scope_for
from herald.streams import codec, sealing
from herald.streams.events import Envelope
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.service_keys import SCOPES, key_id, parse_service_keys
from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY, ApiClient, running_api
from tests.api.live.conftest import LIVE_MODULES

KEYS = {scope: f"hk_{scope}_" + "x" * 24 for scope in SCOPES}
# the publisher's key is given hashed: the environment holds no usable key for it
HASHED = "sha256:" + hashlib.sha256(KEYS["publish"].encode()).hexdigest()
SERVICE_KEYS = ",".join(
    f"{scope}-key:{scope}:{HASHED if scope == 'publish' else key}" for scope, key in KEYS.items())
NID = "01HZX3J4K5M6N7P8Q9R0S1T2V3"
CE = {"specversion": "1.0", "id": "scope-1", "source": "https://shop.example/orders",
      "type": "com.herald.notification.created", "subject": "alice",
      "data": {"title": "from a cloudevent"}}


def requests(nid: str, fanout: str, run: str = "") -> dict[str, tuple[str, str, Any,
                                                                    dict[str, str]]]:
    """operation id → (method, path, json body, headers): a request valid in scope."""
    user = "/v1/users/alice"
    return {
        "publish": ("POST", "/v1/notifications", {"user": "alice", "title": "matrix"}, {}),
        "publish_batch": ("POST", "/v1/notifications/batch",
                          {"notifications": [{"user": "alice", "title": "b"}]}, {}),
        "events_publish": ("POST", "/v1/events", CE,
                           {"Content-Type": "application/cloudevents+json"}),
        "notification_by_event": ("GET", f"/v1/notifications/by-event-id?source="
                                  f"{CE['source']}&id=scope-1", None, {}),
        "cancel_scheduled": ("DELETE", "/v1/scheduled/some-key", None, {}),
        "inbox_list": ("GET", f"{user}/inbox", None, {}),
        "inbox_unread_count": ("GET", f"{user}/unread_count", None, {}),
        "inbox_read": ("POST", f"{user}/inbox/{nid}/read", None, {}),
        "inbox_unread": ("POST", f"{user}/inbox/{nid}/unread", None, {}),
        "inbox_archive": ("POST", f"{user}/inbox/{nid}/archive", None, {}),
        "inbox_read_all": ("POST", f"{user}/inbox/read_all", None, {}),
        "inbox_delete": ("DELETE", f"{user}/inbox/{nid}", None, {}),
        "preferences_get": ("GET", f"{user}/preferences", None, {}),
        "preferences_put": ("PUT", f"{user}/preferences", {"preferences": {}}, {}),
        "profile_get": ("GET", f"{user}/profile", None, {}),
        "profile_put": ("PUT", f"{user}/profile", {"email": "a@example.com"}, {}),
        "notification_status": ("GET", f"/v1/notifications/{nid}", None, {}),
        "live_events": ("HEAD", f"{user}/events", None, {}),
        "live_ws": ("HEAD", f"{user}/ws", None, {}),  # 426 in scope: no upgrade asked
        "admin_status": ("GET", "/v1/admin/status", None, {}),
        "user_erase": ("DELETE", "/v1/users/zed", None, {}),
        "user_sign_out": ("POST", f"{user}/sign_out", None, {}),
        "devices_list": ("GET", f"{user}/devices", None, {}),
        "device_register": ("POST", f"{user}/devices", {"platform": "fcm", "token": TOKEN}, {}),
        "device_remove": ("DELETE", f"{user}/devices/{device_id('fcm', TOKEN)}", None, {}),
        "contact_put": ("PUT", f"{user}/contacts", {"kind": "locale", "value": "en"}, {}),
        "contact_delete": ("DELETE", f"{user}/contacts/locale", None, {}),
        "templates_list": ("GET", "/v1/templates", None, {}),
        "template_put": ("PUT", "/v1/templates/scoped", TEMPLATE, {}),
        "template_get": ("GET", "/v1/templates/scoped", None, {}),
        "template_preview": ("POST", "/v1/templates/scoped/preview", {"data": {"n": 1}}, {}),
        "topic_publish": ("POST", "/v1/topics/news/notifications", {"title": "to news"}, {}),
        "broadcast_publish": ("POST", "/v1/broadcasts", {"title": "to all"}, {}),
        "fanout_status": ("GET", f"/v1/fanouts/{fanout}", None, {}),
        "topics_list": ("GET", f"{user}/topics", None, {}),
        "topic_subscribe": ("PUT", f"{user}/topics/news", None, {}),
        "topic_unsubscribe": ("DELETE", f"{user}/topics/news", None, {}),
        "inbox_counts": ("GET", f"{user}/inbox/counts", None, {}),
        "inbox_seen": ("POST", f"{user}/inbox/seen", None, {}),
        "inbox_bulk": ("POST", f"{user}/inbox/bulk", {"action": "seen"}, {}),
        "inbox_snooze": ("POST", f"{user}/inbox/{nid}/snooze", {"seconds": 60}, {}),
        "inbox_unarchive": ("POST", f"{user}/inbox/{nid}/unarchive", None, {}),
        "workflows_list": ("GET", "/v1/workflows", None, {}),
        "workflow_put": ("PUT", "/v1/workflows/scoped", WORKFLOW, {}),
        "workflow_get": ("GET", "/v1/workflows/scoped", None, {}),
        "workflow_trigger": ("POST", "/v1/workflows/scoped/trigger", {"to": "alice"}, {}),
        "business_event": ("POST", "/v1/business-events", {"type": "order.paid",
                                                           "user": "alice"}, {}),
        "workflow_run_get": ("GET", f"/v1/workflow-runs/{run}", None, {}),
    }


TOKEN = "fcm-token-of-the-scope-matrix"
WORKFLOW = {"steps": [{"id": "hi", "type": "send", "channels": ["in_app"], "title": "hi"}]}
TEMPLATE = {"category": "orders", "default_locale": "en",
            "locales": {"default": {"title": "n {{ n }}", "body": ""}}, "example": {"n": 1}}


async def opened_log(redis: Any, settings: Settings, partition: int) -> list[Envelope]:
    """A partition's entries, opened where the user's key still exists (zed is erased)."""
    store, out = KeyStore(redis, settings), []
    for _, fields in await redis.xrange(Keys(settings.prefix).stream(partition)):
        env = codec.decode(fields[b"e"])
        out.append(await sealing.opened(store, env) or env)
    return out


@pytest.fixture
async def scoped(api_settings: Settings) -> AsyncIterator[ApiClient]:
    settings = api_settings.replace(service_keys=SERVICE_KEYS, action_wait_s=5.0)
    async with running_api(settings, LIVE_MODULES) as client:
        yield client


def test_keys_parse_hashed_scoped_and_refuse_mistakes() -> None:
    keys = {k.id: k for k in parse_service_keys(("bare-key-0123456789",), SERVICE_KEYS)}
    assert keys["publish-key"].digest == hashlib.sha256(KEYS["publish"].encode()).digest()
    assert keys["read-key"].scopes == {"read"} and keys["read-key"].tenant == ""
    bare = [k for k in keys.values() if k.id.startswith("k_")]
    assert len(bare) == 1 and bare[0].scopes == set(SCOPES)
    assert next(iter(parse_service_keys((), "ops@acme:*:" + "y" * 16))).tenant == "acme"
    for bad in ("nokey:publish:", "a:publish:short", "a:write:" + "y" * 20,
                "a:publish:sha256:abc", f"a:read:{'y' * 16},a:read:{'z' * 16}"):
        with pytest.raises(ValueError) as caught:
            parse_service_keys((), bad)
        assert "y" * 16 not in str(caught.value)


@pytest.mark.usefixtures("projector")
async def test_every_route_by_every_scope_is_2xx_or_403(scoped: ApiClient, redis: Any) -> None:
    app = scoped.serving.runner.app
    guarded = [r for r in app[ROUTES] if r.auth != "none"]
    assert {r.operation_id for r in guarded} == set(ROUTE_SCOPES) - {"dev_sample"}
    # something to act on: a notification in alice's inbox, a CloudEvent's record
    nid = (await scoped.publish("alice", "target")).body["id"]
    await scoped.post("/v1/events", data=orjson.dumps(CE),
                      headers={"Content-Type": "application/cloudevents+json"})
    await scoped.publish("zed", "to be erased")
    await scoped.publish("alice", "later", delay_seconds=3600, cancel_key="some-key")
    await asyncio.sleep(0.5)
    fanout = (await scoped.post("/v1/broadcasts", json={"title": "before"})).body["id"]
    await scoped.call("PUT", "/v1/workflows/setup", json=WORKFLOW)
    run = (await scoped.post("/v1/workflows/setup/trigger", json={"to": "alice"})
           ).body["runs"][0]["run_id"]
    for _ in range(200):  # until projected: the run exists
        if (await scoped.get(f"/v1/workflow-runs/{run}", auth=SERVICE_KEY)).status == 200:
            break
        await asyncio.sleep(0.05)
    table = requests(nid, fanout, run)
    order = sorted(guarded, key=lambda r: r.operation_id in ("inbox_delete", "user_erase"))
    for route in order:
        method, path, body, headers = table[route.operation_id]
        needed = scope_for(route.auth, route.operation_id)
        for scope, key in KEYS.items():
            answer = await scoped.call(method, path, auth=key, json=body, headers=headers)
            where = f"{route.operation_id} with a {scope} key: {answer.status} {answer.body}"
            assert answer.status < 500, where
            if scope != needed:
                assert answer.status == 403, where
                if method != "HEAD":
                    assert f"lacks the {needed!r} scope" in answer.body["detail"], where
            elif route.operation_id == "live_ws":
                assert answer.status == 426, where
            else:
                assert 200 <= answer.status < 300, where

    created = [env for p in range(scoped.settings.partitions)
               for env in await opened_log(redis, scoped.settings, p)]
    actors = {(env.type, getattr(env.payload, "title", "")): env.actor for env in created}
    assert actors[("notification.created", "matrix")] == "key:publish-key"
    # the CloudEvent was first sent with the bare key (the publisher's was a duplicate)
    assert actors[("notification.created", "from a cloudevent")] == f"key:{key_id(SERVICE_KEY)}"
    assert actors[("profile.changed", "")] == "key:manage-key"
    assert actors[("notification.read", "")] == "key:read-key"
    assert actors[("user.erased", "")] == "key:manage-key"
    assert not any(key in str(env.actor) for env in created for key in KEYS.values())


async def test_bare_keys_keep_every_power_and_tokens_record_their_user(
        scoped: ApiClient) -> None:
    status = await scoped.get("/v1/admin/status", auth=SERVICE_KEY)  # HERALD_API_KEYS
    assert status.status == 200
    published = await scoped.publish("bob", "hi")
    assert published.status == 201
    token = scoped.token("bob")
    assert (await scoped.post("/v1/users/me/inbox/read_all", auth=token)).status in (200, 202)
    denied = await scoped.post("/v1/notifications", auth=token, json={"user": "bob",
                                                                    "title": "x"})
    assert denied.status == 403
