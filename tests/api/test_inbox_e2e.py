"""End to end through HTTP with the projector running: publish → inbox → actions → counts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.streams.settings import Settings
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.usefixtures("projector")


async def wait_inbox(api: ApiClient, user: str, count: int, **kw: Any) -> dict[str, Any]:
    """The first page once it holds ``count`` items (bounded: 10 s)."""
    for _ in range(200):
        answer = await api.get(f"/v1/users/{user}/inbox?limit=100", **kw)
        assert answer.status == 200, answer.body
        if len(answer.body["items"]) >= count:
            return dict(answer.body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user}'s inbox never reached {count} items")


@pytest.mark.cluster
async def test_publish_read_and_unread_count(api: ApiClient) -> None:
    published = await api.publish("alice", "订单已发货 ✓", body="您的包裹 📦 正在路上",
                                  category="orders", data={"订单": 42})
    nid = published.body["id"]
    token = api.token("alice")
    page = await wait_inbox(api, "me", 1, auth=token)
    [item] = page["items"]
    assert item["id"] == nid and item["position"] == published.body["position"]
    assert (item["title"], item["body"]) == ("订单已发货 ✓", "您的包裹 📦 正在路上")
    assert item["data"] == {"订单": 42} and item["category"] == "orders"
    assert item["read_at"] is None and item["archived"] is False
    assert page["unread_count"] == 1
    assert (await api.get("/v1/users/me/unread_count", auth=token)).body == {"unread_count": 1}

    read = await api.post(f"/v1/users/me/inbox/{nid}/read", auth=token)
    assert read.status == 200, read.body
    assert read.body["id"] == nid and read.body["read_at"] is not None
    assert (await api.get("/v1/users/alice/unread_count")).body == {"unread_count": 0}

    unread = await api.post(f"/v1/users/alice/inbox/{nid}/unread")
    assert unread.status == 200 and unread.body["read_at"] is None
    assert (await api.get("/v1/users/alice/unread_count", auth=token)).body["unread_count"] == 1


async def test_archive_delete_and_filters(api: ApiClient) -> None:
    ids = [(await api.publish("bob", f"n{i}")).body["id"] for i in range(4)]
    await wait_inbox(api, "bob", 4)
    archived = await api.post(f"/v1/users/bob/inbox/{ids[0]}/archive")
    assert archived.status == 200 and archived.body["archived"] is True
    assert (await api.post(f"/v1/users/bob/inbox/{ids[1]}/read")).status == 200
    deleted = await api.delete(f"/v1/users/bob/inbox/{ids[2]}")
    assert deleted.status == 200
    assert deleted.body == {"id": ids[2], "deleted": True, "position": deleted.body["position"]}

    async def listed(status: str) -> list[str]:
        answer = await api.get(f"/v1/users/bob/inbox?status={status}")
        return [i["id"] for i in answer.body["items"]]

    assert await listed("all") == [ids[3], ids[1], ids[0]]
    assert await listed("unread") == [ids[3]]
    assert await listed("read") == [ids[1]]
    assert await listed("archived") == [ids[0]]
    for path in (f"/v1/users/bob/inbox/{ids[2]}/read", f"/v1/users/bob/inbox/{ids[2]}"):
        method = "DELETE" if path.endswith(ids[2]) else "POST"
        assert (await api.call(method, path)).status == 404


async def test_read_all(api: ApiClient) -> None:
    for i in range(5):
        await api.publish("carol", f"n{i}")
    await wait_inbox(api, "carol", 5)
    answer = await api.post("/v1/users/carol/inbox/read_all", auth=api.token("carol"))
    assert answer.status == 200, answer.body
    assert answer.body["unread_count"] == 0
    later = await api.publish("carol", "after read_all")
    page = await wait_inbox(api, "carol", 6)
    assert page["unread_count"] == 1 and page["items"][0]["id"] == later.body["id"]


async def test_pagination_over_250_items(api: ApiClient) -> None:
    batch = [{"user": "dave", "title": f"item {i}"} for i in range(250)]
    answer = await api.post("/v1/notifications/batch", json={"notifications": batch})
    assert answer.body["created"] == 250
    by_title = {f"item {i}": r["id"] for i, r in enumerate(answer.body["results"])}
    await wait_inbox(api, "dave", 100)
    for _ in range(200):  # until the last one is projected
        count = (await api.get("/v1/users/dave/unread_count")).body["unread_count"]
        if count == 250:
            break
        await asyncio.sleep(0.05)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "limit=40" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(f"/v1/users/dave/inbox?{query}")).body
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20
    assert pages == 7
    assert len(seen) == 250 and len({i["id"] for i in seen}) == 250
    assert [i["title"] for i in seen] == [f"item {i}" for i in reversed(range(250))]
    assert all(by_title[i["title"]] == i["id"] for i in seen)
    positions = [tuple(map(int, i["position"].split("-"))) for i in seen]
    assert positions == sorted(positions, reverse=True)


async def test_after_keeps_only_newer_items(api: ApiClient) -> None:
    first = await api.publish("erin", "old")
    second = await api.publish("erin", "new")
    await wait_inbox(api, "erin", 2)
    answer = await api.get(f"/v1/users/erin/inbox?after={first.body['position']}")
    assert [i["id"] for i in answer.body["items"]] == [second.body["id"]]


async def test_other_users_items_are_404_not_403_under_own_path(api: ApiClient) -> None:
    """Under your own path, another user's item id looks exactly like a missing one."""
    bobs = await api.publish("frank", "frank's")
    await wait_inbox(api, "frank", 1)
    token = api.token("gina")
    missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    for nid in (bobs.body["id"], missing):
        for verb in ("read", "unread", "archive"):
            answer = await api.post(f"/v1/users/me/inbox/{nid}/{verb}", auth=token)
            assert answer.status == 404
            assert answer.body["detail"] == "no item with this id in this inbox"
        assert (await api.delete(f"/v1/users/me/inbox/{nid}", auth=token)).status == 404
    page = await wait_inbox(api, "frank", 1)
    assert page["items"][0]["read_at"] is None and page["items"][0]["archived"] is False


async def test_actions_answer_202_when_the_projector_is_behind(
    api_settings: Settings, redis: Any
) -> None:
    """With no projector for this namespace, an action is logged and answered 202."""
    from tests.api.conftest import running_api

    slow = api_settings.replace(prefix=api_settings.prefix + "x", action_wait_s=0.05)
    async with running_api(slow) as other:
        answer = await other.post("/v1/users/henry/inbox/read_all")
        assert answer.status == 202
        assert answer.body["status"] == "accepted"
        assert answer.body["position"].count("-") == 1


async def test_inbox_as_of_is_for_services_and_shows_the_past(api: ApiClient) -> None:
    first = await api.publish("olga", "first")
    await wait_inbox(api, "olga", 1)
    await api.publish("olga", "second")
    await wait_inbox(api, "olga", 2)
    then = await api.get(f"/v1/users/olga/inbox?as_of={first.body['position']}")
    assert then.status == 200, then.body
    assert [i["title"] for i in then.body["items"]] == ["first"]
    assert then.body["as_of"] == first.body["position"] and then.body["unread_count"] == 1
    now = await api.get("/v1/users/olga/inbox?as_of=2999-01-01T00:00:00Z")
    assert [i["title"] for i in now.body["items"]] == ["second", "first"]
    assert (await api.get(f"/v1/users/me/inbox?as_of={first.body['position']}",
                          auth=api.token("olga"))).status == 403
    bad = await api.get("/v1/users/olga/inbox?as_of=soon")
    assert bad.status == 422 and bad.body["errors"][0]["path"] == "query.as_of"
    newer = await api.get(f"/v1/users/olga/inbox?as_of=2999-01-01T00:00:00Z&wait=3"
                          f"&after={first.body['position']}")
    assert [i["title"] for i in newer.body["items"]] == ["second"]  # no wait: the past
    before = await api.get("/v1/users/olga/inbox?as_of=1900-01-01T00:00:00Z")
    assert before.body["items"] == [] and before.body["as_of"] == "0-0"


async def test_seen_snooze_unarchive_bulk_and_counts(api: ApiClient) -> None:
    ids = [(await api.publish("sam", f"n{i}", category="orders" if i % 2 else "news")
            ).body["id"] for i in range(4)]
    page = await wait_inbox(api, "sam", 4)
    assert page["unseen_count"] == 4 and page["unread_count"] == 4
    seen = await api.post("/v1/users/sam/inbox/seen")
    assert seen.status == 200, seen.body
    assert seen.body["counts"]["unseen"] == 0 and seen.body["counts"]["unread"] == 4
    snoozed = await api.post(f"/v1/users/sam/inbox/{ids[0]}/snooze", json={"seconds": 3600})
    assert snoozed.status == 200 and snoozed.body["snoozed_until"] is not None, snoozed.body
    listed = await api.get("/v1/users/sam/inbox")
    assert ids[0] not in [i["id"] for i in listed.body["items"]]
    assert [i["id"] for i in (await api.get("/v1/users/sam/inbox?status=snoozed")).body[
        "items"]] == [ids[0]]
    bulk = await api.post("/v1/users/sam/inbox/bulk",
                          json={"action": "archived", "category": "orders"})
    assert bulk.status == 200, bulk.body
    counts = bulk.body["counts"]
    assert (counts["archived"], counts["snoozed"], counts["unread"]) == (2, 1, 1)
    assert counts["categories"] == {"orders": {"total": 2, "unread": 0},
                                    "news": {"total": 1, "unread": 1}}
    back = await api.post(f"/v1/users/sam/inbox/{ids[1]}/unarchive")
    assert back.status == 200 and back.body["archived"] is False
    assert (await api.get("/v1/users/sam/inbox/counts")).body["archived"] == 1
    bad = await api.post("/v1/users/sam/inbox/bulk", json={"action": "exploded"})
    assert bad.status == 422


async def test_an_expired_notification_is_not_shown(api: ApiClient) -> None:
    import datetime as dt

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
    await api.publish("tia", "keep")
    await api.publish("tia", "flash sale", expires_at=soon)
    page = await wait_inbox(api, "tia", 2)
    assert page["unread_count"] == 2
    await asyncio.sleep(1.6)
    page = (await api.get("/v1/users/tia/inbox")).body
    assert [i["title"] for i in page["items"]] == ["keep"] and page["unread_count"] == 1
    assert (await api.get("/v1/users/tia/unread_count")).body == {"unread_count": 1}
