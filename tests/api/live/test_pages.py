"""Pages and their helpers over HTTP: served with ETags, dev-only routes only in dev
mode, the operator status document and its throughput sampler."""

from __future__ import annotations

import pytest

from herald.api.routes_admin import Sampler, totals_of
from herald.streams.settings import Settings
from tests.api.live.conftest import LiveClient, running_live


async def test_pages_and_assets_are_served_with_etags(live: LiveClient) -> None:
    index = await live.get("/", auth=None)
    assert index.status == 200 and index.content_type == "text/html"
    assert b'data-dev="false"' in index.raw and b"/static/app.js" in index.raw
    again = await live.get("/", auth=None, headers={"If-None-Match": index.headers["ETag"]})
    assert again.status == 304 and again.raw == b""
    admin = await live.get("/admin", auth=None)
    assert admin.status == 200 and b"/static/admin.js" in admin.raw
    kinds = {"app.js": "text/javascript", "style.css": "text/css",
             "favicon.svg": "image/svg+xml", "i18n.js": "text/javascript"}
    for name, kind in kinds.items():
        answer = await live.get(f"/static/{name}", auth=None)
        assert answer.status == 200 and answer.content_type == kind, name
    assert (await live.get("/static/nope.js", auth=None)).status == 404
    i18n = (await live.get("/static/i18n.js", auth=None)).raw.decode()
    assert "运维面板" in i18n and "Demo controls" in i18n
    for name in ("client.js", "inbox.js", "inbox-row.js", "inbox-strings.js",
                 "inbox-style.js"):  # the browser client, at a versioned path
        module = await live.get(f"/v1/{name}", auth=None)
        assert module.status == 200 and module.content_type == "text/javascript"
        assert module.headers["Cache-Control"] == "no-cache"
        cached = await live.get(f"/v1/{name}", auth=None,
                                headers={"If-None-Match": module.headers["ETag"]})
        assert cached.status == 304
    inbox = (await live.get("/v1/inbox.js", auth=None)).raw.decode()
    assert 'from "./client.js"' in inbox and 'from "./inbox-strings.js"' in inbox
    strings = (await live.get("/v1/inbox-strings.js", auth=None)).raw.decode()
    assert "通知" in strings and "Mark all as read" in strings


async def test_the_demo_page_is_a_user_of_the_element(live: LiveClient) -> None:
    """No second copy of the inbox: the page holds <herald-inbox> elements and its script
    only finds a token; the list, badge, actions and live stream are the element's."""
    index = (await live.get("/", auth=None)).raw.decode()
    assert index.count("<herald-inbox") == 2 and 'type="module" src="/static/app.js"' in index
    app = (await live.get("/static/app.js", auth=None)).raw.decode()
    assert 'import "/v1/inbox.js"' in app
    for duplicate in ("EventSource", "/inbox?", "read_all", "unread_count", "render("):
        assert duplicate not in app, duplicate


async def test_dev_routes_exist_only_in_dev_mode(live: LiveClient,
                                                 live_settings: Settings) -> None:
    assert (await live.post("/v1/dev/token?user=amy", auth=None)).status == 404
    async with running_live(live_settings.replace(dev_mode=True)) as dev:
        assert b'data-dev="true"' in (await dev.get("/", auth=None)).raw
        minted = await dev.post("/v1/dev/token?user=amy", auth=None)
        assert minted.status == 200 and minted.body["user"] == "amy"
        token = minted.body["token"]
        count = await dev.get("/v1/users/me/unread_count", auth=token)
        assert count.status == 200
        sample = await dev.post("/v1/dev/users/me/sample", auth=token)
        assert sample.status == 201 and "-" in sample.body["position"]
        refused = await dev.post("/v1/dev/users/bob/sample", auth=token)
        assert refused.status == 403
        bad = await dev.post("/v1/dev/token?user=bad%09user", auth=None)
        assert bad.status == 422


@pytest.mark.usefixtures("projector")
async def test_admin_status_document(live: LiveClient) -> None:
    await live.publish("amy", "x")
    answer = await live.get("/v1/admin/status")
    assert answer.status == 200
    doc = answer.body
    assert len(doc["status"]["partitions"]) == live.settings.partitions
    assert doc["status"]["totals"]["length"] >= 1 and doc["throughput"] is None
    assert doc["live"]["connections"] == 0 and doc["generated_at"].endswith("Z")
    denied = await live.get("/v1/admin/status", auth=live.token("amy"))
    assert denied.status == 403
    assert (await live.get("/v1/admin/status", auth=None)).status == 401


def test_sampler_rates_between_calls_a_second_apart() -> None:
    sampler = Sampler()
    assert sampler.update({"appended": 10, "processed:projector": 5}, 100.0) is None
    assert sampler.update({"appended": 11, "processed:projector": 6}, 100.5) is None
    rates = sampler.update({"appended": 30, "processed:projector": 25}, 102.0)
    assert rates == {"appended": 10.0, "processed:projector": 10.0}
    assert sampler.update({"appended": 31, "processed:projector": 25}, 102.2) == rates


def test_totals_count_processed_entries_per_group() -> None:
    status = {"totals": {"length": 10}, "partitions": [
        {"length": 6, "groups": [{"name": "projector", "lag": 1, "pending": 2}]},
        {"length": 4, "groups": [{"name": "projector", "lag": None, "pending": 0},
                                 {"name": "webhook", "lag": 4, "pending": 0}]},
    ]}
    assert totals_of(status) == {"appended": 10, "processed:projector": 7,
                                 "processed:webhook": 0}
