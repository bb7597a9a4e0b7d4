"""problem+json for every failure: 400, 404, 405, 413, 422 with field paths, 503, and 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from herald.api.app import DEFAULT_MODULES
from herald.api.jsonio import json_response
from herald.api.routing import Call, Reply, Route
from herald.streams.server import start_server
from herald.streams.settings import Settings
from tests.api.conftest import SERVICE_KEY, ApiClient, running_api

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.content_type == "application/problem+json"
    assert PROBLEM_KEYS <= set(answer.body)
    assert answer.body["status"] == status
    assert answer.body["request_id"] == answer.headers["X-Request-Id"]
    return dict(answer.body)


def paths(problem: dict[str, Any]) -> set[str]:
    return {e["path"] for e in problem.get("errors", [])}


async def test_unknown_routes_are_404(api: ApiClient) -> None:
    for path in ("/v1", "/v1/users", "/v1/users/alice/inbox/", "/nope", "/v2/x"):
        assert_problem(await api.get(path), 404)


async def test_wrong_method_is_405_with_allow(api: ApiClient) -> None:
    problem = assert_problem(answer := await api.call("PUT", "/v1/notifications"), 405)
    assert answer.headers["Allow"] == "POST"
    assert "POST" in problem["detail"]
    head = await api.call("HEAD", "/v1/notifications")  # HEAD only beside a GET
    assert head.status == 405 and head.headers["Allow"] == "POST"
    assert (await api.call("HEAD", "/healthz")).status == 200  # tests/api/test_hardening.py


@pytest.mark.parametrize(
    "data",
    [b"{", b"not json", b'{"user": "a", "title": NaN}', b"\xff\xfe{}", b'{"a": "\\ud800"}',
     b"[1, 2", b'{"a": 1}{"b": 2}', b"   ", b""],
)
async def test_malformed_json_is_400(api: ApiClient, data: bytes) -> None:
    problem = assert_problem(await api.post("/v1/notifications", data=data,
                                            headers={"Content-Type": "application/json"}), 400)
    assert "JSON" in problem["detail"]


async def test_oversized_body_is_413(api: ApiClient, api_settings: Settings) -> None:
    big = b'{"user": "a", "title": "' + b"x" * api_settings.max_body_bytes + b'"}'
    assert_problem(await api.post("/v1/notifications", data=big), 413)

    async def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(0, len(big), 65536):
            yield big[:65536]

    url = api.url + "/v1/notifications"
    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with api.session.post(url, data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"user", "title"}),
        ({"user": "a", "title": 5}, {"title"}),
        ({"user": "a", "title": "   "}, {"title"}),
        ({"user": 7, "title": "t", "data": "x"}, {"user", "data"}),
        ({"user": "a\tb", "title": "t"}, {"user"}),
        ({"user": "a\n", "title": "t"}, {"user"}),
        ({"user": "me", "title": "t"}, {"user"}),
        ({"user": "a", "title": "t", "channels": ["in_app", "pigeon"]}, {"channels.1"}),
        ({"user": "a", "title": "t", "channels": []}, {"channels"}),
        ({"user": "a", "title": "t", "recipients": {"sms": 5}}, {"recipients.sms"}),
        ({"user": "a", "title": "t", "extra": 1}, {"extra"}),
        ({"user": "a", "title": "t", "delay_seconds": -1}, {"delay_seconds"}),
        ({"user": "a", "title": "t", "deliver_at": "tomorrow"}, {"deliver_at"}),
        ({"user": "a", "title": "t", "deliver_at": "0000-01-01T00:00:00Z"}, {"deliver_at"}),
        ({"user": "a", "title": "t", "delay_seconds": 10**9}, {"delay_seconds"}),
        ({"user": "a", "title": "t", "delay_seconds": 1, "deliver_at": "2026-01-01T00:00:00Z"},
         {"delay_seconds"}),
        ({"user": "a", "title": "t", "cancel_key": "k"}, {"cancel_key"}),
        ({"user": "a", "title": "t", "digest_key": "d", "delay_seconds": 5}, {"digest_key"}),
        ({"user": "a", "title": "t", "digest_window_seconds": 60}, {"digest_window_seconds"}),
        ({"user": "a", "title": "t", "data": {"blob": "x" * 70_000}}, {"data"}),
        ({"user": "a", "title": "t", "idempotency_key": "has space"}, {"idempotency_key"}),
        ([1, 2], {"body"}),
        ("just a string", {"body"}),
    ],
)
async def test_schema_violations_are_422_with_field_paths(
    api: ApiClient, body: Any, expected: set[str]
) -> None:
    problem = assert_problem(await api.post("/v1/notifications", json=body), 422)
    assert paths(problem) == expected, problem


@pytest.mark.parametrize(
    ("query", "expected"),
    [("limit=0", "query.limit"), ("limit=abc", "query.limit"), ("limit=100000", "query.limit"),
     ("limit=1&limit=2", "query.limit"), ("status=new", "query.status"),
     ("after=yesterday", "query.after"), ("cursor=%00", "query.cursor")],
)
async def test_bad_query_parameters_are_422(api: ApiClient, query: str, expected: str) -> None:
    problem = assert_problem(await api.get(f"/v1/users/alice/inbox?{query}"), 422)
    assert paths(problem) == {expected}


async def test_bad_path_parameters(api: ApiClient) -> None:
    # An id that cannot be one matches no route (and so no other route's methods either).
    answer = await api.post("/v1/users/alice/inbox/not-an-id/read")
    assert_problem(answer, 404)
    answer = await api.call("PUT", "/v1/users/alice/inbox/read_all")
    assert_problem(answer, 405)
    assert answer.headers["Allow"] == "POST"
    problem = assert_problem(await api.get("/v1/users/a%09b/unread_count"), 422)
    assert paths(problem) == {"path.user"}
    problem = assert_problem(await api.delete("/v1/scheduled/a%20b?user=alice"), 422)
    assert paths(problem) == {"path.cancel_key"}
    problem = assert_problem(await api.delete("/v1/scheduled/k"), 404)  # nothing under k
    assert "cancel key 'k'" in problem["detail"]


# ------------------------------------------------- a test-only route module
class Probe:
    """Routes registered through the extension point, to drive the machinery."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def slow(self, call: Call) -> web.Response:
        self.entered.set()
        await self.release.wait()
        return json_response({"status": "ok"})

    async def boom(self, call: Call) -> web.Response:
        raise RuntimeError("secret internals")

    def routes(self, settings: Settings) -> list[Route]:
        reply = {200: Reply("ok", "Health")}
        return [Route("GET", "/test/slow", self.slow, "test_slow", "slow", "test", "none", reply),
                Route("GET", "/test/boom", self.boom, "test_boom", "boom", "test", "none", reply)]


async def test_unexpected_error_is_a_500_problem_revealing_nothing(api_settings: Settings) -> None:
    async with running_api(api_settings, (*DEFAULT_MODULES, Probe())) as client:
        problem = assert_problem(answer := await client.get("/test/boom"), 500)
        assert "secret internals" not in answer.raw.decode()
        assert problem["detail"] == "an unexpected error occurred; it was logged"


async def test_request_timeout_is_503_with_retry_after(api_settings: Settings) -> None:
    probe = Probe()
    settings = api_settings.replace(request_timeout_s=0.2)
    async with running_api(settings, (*DEFAULT_MODULES, probe)) as client:
        answer = await client.get("/test/slow")
        assert_problem(answer, 503)
        assert int(answer.headers["Retry-After"]) >= 1


async def test_overload_is_503_with_retry_after(api_settings: Settings) -> None:
    probe = Probe()
    settings = api_settings.replace(api_max_inflight=1)
    async with running_api(settings, (*DEFAULT_MODULES, probe)) as client:
        held = asyncio.create_task(client.get("/test/slow"))
        await asyncio.wait_for(probe.entered.wait(), 5)
        answer = await client.get("/v1/users/alice/unread_count")
        assert_problem(answer, 503)
        assert answer.headers["Retry-After"] == "1"
        assert (await client.get("/healthz")).status == 200  # liveness is exempt
        probe.release.set()
        assert (await held).status == 200
        assert (await client.get("/v1/users/alice/unread_count")).status == 200


async def test_redis_unreachable_is_503(api_settings: Settings, tmp_path: Path) -> None:
    handle = start_server(tmp_path / "doomed", die_with_parent=True)
    settings = api_settings.replace(redis_url=handle.url)
    try:
        async with running_api(settings) as client:
            assert (await client.get("/v1/users/alice/unread_count")).status == 200
            handle.stop()
            answer = await client.get("/v1/users/alice/unread_count")
            assert_problem(answer, 503)
            assert "Retry-After" in answer.headers
            ready = await client.get("/readyz")
            assert_problem(ready, 503)
            assert (await client.get("/healthz")).status == 200
    finally:
        handle.stop()


async def test_request_id_is_echoed_or_made(api: ApiClient) -> None:
    answer = await api.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert answer.headers["X-Request-Id"] == "abc-123"
    answer = await api.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert answer.headers["X-Request-Id"] != "bad id with spaces"
    assert len(answer.headers["X-Request-Id"]) == 32


async def test_low_level_garbage_never_gets_a_500(api: ApiClient) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    status = line.split()[1]
    assert status.startswith(b"4"), line


async def test_a_body_sent_too_slowly_times_out(api_settings: Settings) -> None:
    async with running_api(api_settings.replace(request_timeout_s=0.3)) as client:
        host, port = client.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/notifications HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + SERVICE_KEY.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"us")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        assert status_line.split()[1] == b"503"
