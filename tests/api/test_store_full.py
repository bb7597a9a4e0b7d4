"""A full event store (maxmemory, noeviction): writes are refused with 507 and nothing
is half-written; reads go on; an evicting policy is warned about."""

from __future__ import annotations

from typing import Any

from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.api.conftest import ApiClient


async def test_a_full_store_refuses_writes_with_507_and_writes_nothing(
        api: ApiClient, projector: None, redis: Any, api_settings: Settings) -> None:
    before = await api.publish("alice", "before")
    keys = Keys(api_settings.prefix)
    stream = keys.stream(_partition(api_settings, "alice"))
    async with _full(redis):
        length = await redis.xlen(stream)
        answer = await api.post("/v1/notifications/batch", json={"notifications": [
            {"user": "alice", "title": f"during {i}"} for i in range(20)]})
        assert answer.status == 507 and answer.content_type == "application/problem+json"
        assert answer.headers["Retry-After"] and "memory limit" in answer.body["detail"]
        assert await redis.xlen(stream) == length  # nothing of the batch
        inbox = await api.get("/v1/users/alice/inbox")  # reads go on
        assert inbox.status == 200
    after = await api.publish("alice", "after")  # memory freed: writes flow again
    assert after.status == 201
    titles = [i["title"] for i in (await api.get(
        f"/v1/users/alice/inbox?after={before.body['position']}&wait=5")).body["items"]]
    assert titles == ["after"]


async def test_an_evicting_policy_is_reported_by_readyz(
        api: ApiClient, projector: None, redis: Any) -> None:
    answer = await api.get("/readyz", auth=None)
    assert answer.status == 200 and answer.body["warnings"] == []
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        answer = await api.get("/readyz", auth=None)
    finally:
        await redis.config_set("maxmemory-policy", "noeviction")
    assert answer.status == 200
    [warning] = answer.body["warnings"]
    assert "allkeys-lru" in warning and "noeviction" in warning


def _partition(settings: Settings, user: str) -> int:
    from herald.streams.partitions import partition_for

    return partition_for(user, settings.partitions)


class _full:
    """The server at its memory limit inside the block (noeviction), restored after."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def __aenter__(self) -> None:
        # well below what the server uses: with noeviction every write that may grow
        # memory is refused while used memory is above the limit, and the frees of
        # other clients meanwhile (lazy deletions, expiries) cannot bring it under
        used = int((await self.redis.info("memory"))["used_memory"])
        await self.redis.config_set("maxmemory-policy", "noeviction")
        await self.redis.config_set("maxmemory", max(1024 * 1024, used // 2))
        try:
            await self.redis.set("ballast", b"x")
        except Exception:
            return
        await self.redis.config_set("maxmemory", 0)
        raise AssertionError(f"the server accepts writes at a limit of half its {used} bytes")

    async def __aexit__(self, *exc: object) -> None:
        await self.redis.config_set("maxmemory", 0)
