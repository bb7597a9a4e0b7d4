"""User ids beyond ASCII: any UTF-8 text of 1-256 bytes without control characters,
URL-encoded in paths, through every per-user route, the token and the CLI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.api.conftest import ApiClient
from tests.api.test_inbox_e2e import wait_inbox

pytestmark = pytest.mark.usefixtures("projector")

USERS = ["张三", "Zoë / ops team", "用户@例子.中国", "a%2Fb?x=1#y", "📬" * 64]


@pytest.mark.parametrize("user", USERS)
async def test_every_per_user_route_takes_a_unicode_id(api: ApiClient, user: str) -> None:
    path = f"/v1/users/{quote(user, safe='')}"
    token = api.token(user)
    published = await api.publish(user, "你好", category="orders")
    nid = published.body["id"]
    for who, auth in ((path, None), ("/v1/users/me", token)):
        kw: dict[str, Any] = {} if auth is None else {"auth": auth}
        page = await wait_inbox(api, who.rsplit("/", 1)[1] if auth else quote(user, safe=""),
                                1, **kw)
        assert [i["id"] for i in page["items"]] == [nid]
    assert (await api.get(f"{path}/unread_count", auth=token)).body == {"unread_count": 1}
    for verb in ("read", "unread", "archive"):
        done = await api.post(f"{path}/inbox/{nid}/{verb}", auth=token)
        assert done.status == 200, (verb, done.body)
    assert (await api.post(f"{path}/inbox/read_all", auth=token)).status in (200, 202)
    prefs = await api.call("PUT", f"{path}/preferences",
                           json={"preferences": {"orders": {"sms": False}}})
    assert prefs.status in (200, 202), prefs.body
    got = await api.get(f"{path}/preferences", auth=token)
    assert got.status == 200, got.body
    assert (await api.delete(f"{path}/inbox/{nid}", auth=token)).status == 200
    # Another user's token may not act for this one (and vice versa).
    other = api.token(user[:-1] or "someone else")
    assert (await api.get(f"{path}/inbox", auth=other)).status == 403


@pytest.mark.parametrize("user", ["a\tb", "x" * 257, "用" * 86, "me"])
async def test_bad_ids_are_refused_with_a_problem(api: ApiClient, user: str) -> None:
    answer = await api.post("/v1/notifications", json={"user": user, "title": "t"})
    assert answer.status == 422 and answer.content_type == "application/problem+json"
    listed = await api.get(f"/v1/users/{quote(user, safe='')}/inbox")
    assert listed.status in (403, 404, 422) and listed.status < 500
