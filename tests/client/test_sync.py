"""``herald_client.Herald`` against a real ``herald run``: every operation, errors carrying
the problem+json, retries that reuse the idempotency key (a retried publish is appended
once), timeouts, and no server at all."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from herald.streams.server import free_port
from herald_client import (
    AuthenticationError,
    Herald,
    NotFound,
    PermissionDenied,
    RequestTimeout,
    TransportError,
    Unavailable,
    Unprocessable,
    mint_token,
)
from tests.client.conftest import Proxy, Running

pytestmark = pytest.mark.slow


@pytest.fixture
def herald(herald_server: Running) -> Herald:
    return Herald(herald_server.url, api_key=herald_server.api_key)


def arrived(herald: Herald, user: str, count: int, within: float = 10.0) -> list[dict]:
    """The user's inbox once it holds ``count`` items (long-poll, then plain reads)."""
    deadline = time.monotonic() + within
    page = herald.inbox(user, after="0-1", wait=min(5.0, within))
    while len(page["items"]) < count:
        assert time.monotonic() < deadline, page
        time.sleep(0.05)
        page = herald.inbox(user)
    return list(page["items"])


def test_publish_inbox_and_actions(herald: Herald) -> None:
    first = herald.publish("ada", "Your order has shipped", body="Arrives Friday.",
                           category="orders", data={"order": 42},
                           idempotency_key="order-42-shipped")
    assert first["kind"] == "created" and first["duplicate"] is False
    again = herald.publish("ada", "Your order has shipped", body="Arrives Friday.",
                           category="orders", data={"order": 42},
                           idempotency_key="order-42-shipped")
    assert again["duplicate"] is True and again["id"] == first["id"]
    second = herald.publish("ada", "订单已签收")
    [newest, oldest] = arrived(herald, "ada", 2)
    assert (newest["id"], oldest["id"]) == (second["id"], first["id"])
    assert oldest["data"] == {"order": 42} and newest["title"] == "订单已签收"
    assert herald.unread_count("ada") == 2

    read = herald.mark_read("ada", first["id"])
    assert read["id"] == first["id"] and read["read_at"]
    assert herald.mark_unread("ada", first["id"])["read_at"] is None
    assert herald.archive("ada", second["id"])["archived"] is True
    assert herald.mark_all_read("ada")["unread_count"] == 0
    assert [i["id"] for i in herald.iter_inbox("ada", status="archived", page_size=1)] == [
        second["id"]]
    assert herald.delete("ada", first["id"])["deleted"] is True
    assert [i["id"] for i in herald.iter_inbox("ada", page_size=1)] == [second["id"]]


def test_batch_schedule_cancel_and_status(herald: Herald) -> None:
    batch = herald.publish_batch([{"user": "bea", "title": f"n{i}"} for i in range(3)]
                                 + [{"user": "bad\tuser", "title": "x"}])
    assert (batch["created"], batch["failed"]) == (3, 1)
    assert batch["results"][3]["status"] == 422
    later = herald.schedule("bea", "Reminder", delay=timedelta(hours=1), cancel_key="rem-1")
    assert later["kind"] == "scheduled"
    at = herald.schedule("bea", "At a time", at=datetime.now(UTC) + timedelta(days=1),
                         cancel_key="rem-2")
    assert at["kind"] == "scheduled"
    cancelled = herald.cancel("rem-1", user="bea")
    assert cancelled["cancel_key"] == "rem-1"
    with pytest.raises(ValueError, match="exactly one"):
        herald.schedule("bea", "x")

    created = batch["results"][0]
    deadline = time.monotonic() + 10
    while True:
        try:
            status = herald.status(created["id"])
            break
        except NotFound:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert status["id"] == created["id"] and status["title"] == "n0"
    assert "in_app" in status["channels"]
    with pytest.raises(NotFound) as missing:
        herald.status("0" * 26)
    assert missing.value.problem["status"] == 404 and missing.value.request_id


def test_users_and_operations(herald: Herald) -> None:
    herald.set_preferences("cai", {"marketing": {"email": False}})
    herald.set_profile("cai", email="cai@example.com")
    deadline = time.monotonic() + 10
    while herald.profile("cai")["email"] != "cai@example.com":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert herald.preferences("cai")["preferences"] == {"marketing": {"email": False}}
    assert herald.health() == {"status": "ok"}
    assert herald.ready()["status"] == "ready"
    assert herald.erase_user("cai")["erased"] is True


def test_errors_carry_the_problem(herald_server: Running, herald: Herald) -> None:
    with pytest.raises(Unprocessable) as bad:
        herald.publish("a\tb", "")
    paths = {e["path"] for e in bad.value.errors}
    assert {"user", "title"} <= paths
    assert bad.value.problem["type"].startswith("urn:herald:problem:")
    assert bad.value.status == 422 and bad.value.request_id
    with pytest.raises(AuthenticationError):
        Herald(herald_server.url, api_key="wrong-key").unread_count("ada")
    user = Herald(herald_server.url, token=mint_token(herald_server.token_secret, "dee"))
    assert user.unread_count("me") == 0
    with pytest.raises(PermissionDenied):
        user.publish("dee", "services only")
    with pytest.raises(PermissionDenied):
        user.inbox("someone-else")


def test_a_retried_publish_is_appended_once(herald_server: Running) -> None:
    """The first attempt reaches the server, then the answer is lost (503 from a proxy,
    or no answer in time): the retry carries the same idempotency key."""
    with Proxy(herald_server.url, fail_after_forward=1) as proxy:
        herald = Herald(proxy.url, api_key=herald_server.api_key, retries=2)
        sent = herald.publish("eve", "once")  # no key given: the client made one
        assert proxy.seen["/v1/notifications"] == 2
        assert sent["duplicate"] is True  # the second attempt found the first append
    with Proxy(herald_server.url, hang_after_forward=1, hang_s=3.0) as proxy:
        herald = Herald(proxy.url, api_key=herald_server.api_key, timeout=1.0, retries=2)
        sent_again = herald.publish("eve", "once more", idempotency_key="eve-2")
        assert proxy.seen["/v1/notifications"] == 2 and sent_again["duplicate"] is True
    direct = Herald(herald_server.url, api_key=herald_server.api_key)
    items = arrived(direct, "eve", 2)
    assert sorted(i["title"] for i in items) == ["once", "once more"]
    time.sleep(0.3)
    assert len(direct.inbox("eve")["items"]) == 2  # and nothing more arrives


def test_retries_end_in_the_last_error(herald_server: Running) -> None:
    with Proxy(herald_server.url, fail_after_forward=10) as proxy:
        herald = Herald(proxy.url, api_key=herald_server.api_key, retries=2)
        with pytest.raises(Unavailable) as unavailable:
            herald.unread_count("fay")
        assert proxy.seen["/v1/users/fay/unread_count"] == 3
        assert unavailable.value.detail == "proxy says try again"
    with Proxy(herald_server.url, hang_after_forward=10, hang_s=2.0) as proxy:
        herald = Herald(proxy.url, api_key=herald_server.api_key, timeout=0.5, retries=1)
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            herald.unread_count("fay")
        assert time.monotonic() - started < 5


def test_no_server() -> None:
    herald = Herald(f"http://127.0.0.1:{free_port()}", api_key="k", retries=1)
    with pytest.raises(TransportError):
        herald.health()
