"""Topics end to end: subscribe, leave, publish to a topic, the fan-out worker (resumable,
exactly once per recipient, never another tenant's or a leaver's inbox)."""

from __future__ import annotations

from typing import Any

import pytest

from herald.consumers.fanout.jobs import FanoutJobs
from herald.consumers.fanout.worker import Fanout
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY, running_api, running_role
from tests.api.test_inbox_e2e import wait_inbox
from tests.conftest import log_entries

pytestmark = pytest.mark.usefixtures("projector")
KEY_B = "key-of-beta-0123456789"


async def test_publish_to_a_topic_reaches_its_subscribers_once(
        api_settings: Settings, redis: Any) -> None:
    settings = api_settings.replace(api_keys=(SERVICE_KEY, f"beta:{KEY_B}"), fanout_batch=2)
    async with running_api(settings) as api:
        users = ["ann", "bo", "张三", "dee", "eve"]
        for user in users:
            done = await api.call("PUT", f"/v1/users/{user}/topics/releases")
            assert done.status == 200, done.body
        beta = await api.call("PUT", "/v1/users/ann/topics/releases", auth=KEY_B)
        assert beta.status == 200
        token = api.token("eve")
        left = await api.delete("/v1/users/me/topics/releases", auth=token)
        assert left.status == 200 and left.body["subscribed"] is False
        assert (await api.call("PUT", "/v1/users/me/topics/x", auth=token)).status == 403
        mine = await api.get("/v1/users/dee/topics", auth=api.token("dee"))
        assert mine.body == {"user": "dee", "topics": ["releases"]}

        published = await api.post("/v1/topics/releases/notifications",
                                    json={"title": "v2 is out", "idempotency_key": "v2"})
        assert published.status == 202, published.body
        again = await api.post("/v1/topics/releases/notifications",
                               json={"title": "v2 is out", "idempotency_key": "v2"})
        assert again.status == 200 and again.body["id"] == published.body["id"]
        other = await api.post("/v1/topics/releases/notifications",
                               json={"title": "v3?", "idempotency_key": "v2"})
        assert other.status == 409
        # Resumable: a walk interrupted after its first batch, its cursor lost (the
        # worker died before saving it), then the role: each subscriber gets it once.
        fanout = Fanout(redis, settings)
        await fanout.producer.start()
        jobs = FanoutJobs(redis, Keys(settings.prefix))
        job = await jobs.get(published.body["id"])
        assert job is not None
        async with running_role("fanout", settings, redis):
            for user in users[:4]:
                page = await wait_inbox(api, user, 1)
                assert [i["title"] for i in page["items"]] == ["v2 is out"]
            status = await api.get(f"/v1/fanouts/{published.body['id']}")
            assert status.body["status"] == "done" and status.body["sent"] == 4
        job.partition, job.scan, job.done = 0, "0", None
        assert await fanout.walk(job) == 4  # walked again: every append is a duplicate
        for user in users[:4]:
            assert len((await api.get(f"/v1/users/{user}/inbox")).body["items"]) == 1
        assert (await api.get("/v1/users/eve/inbox")).body["items"] == []
        assert (await api.get("/v1/users/ann/inbox", auth=KEY_B)).body["items"] == []
        assert (await api.get(f"/v1/fanouts/{published.body['id']}", auth=KEY_B)).status == 404
        created = [e for p in range(settings.partitions)
                   for e in await log_entries(redis, settings, p)
                   if e.type == "notification.created"]
        assert len(created) == 4


async def test_a_broadcast_reaches_every_known_user_of_the_tenant(
        api_settings: Settings, redis: Any) -> None:
    settings = api_settings.replace(api_keys=(SERVICE_KEY, f"beta:{KEY_B}"))
    async with running_api(settings) as api:
        for user in ("fay", "gus"):
            await api.publish(user, "hello")
        await api.call("PUT", "/v1/users/hal/topics/anything")  # known through a topic
        beta = await api.post("/v1/notifications", auth=KEY_B,
                              json={"user": "fay", "title": "beta's"})
        assert beta.status == 201
        for user in ("fay", "gus"):
            await wait_inbox(api, user, 1)
        sent = await api.post("/v1/broadcasts", json={"title": "maintenance tonight"})
        assert sent.status == 202, sent.body
        async with running_role("fanout", settings, redis):
            for user, count in (("fay", 2), ("gus", 2), ("hal", 1)):
                page = await wait_inbox(api, user, count)
                assert page["items"][0]["title"] == "maintenance tonight"
        beta_page = (await api.get("/v1/users/fay/inbox", auth=KEY_B)).body
        assert [i["title"] for i in beta_page["items"]] == ["beta's"]
