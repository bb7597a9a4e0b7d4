"""Redis over TLS with least privilege: the suite starts a TLS endpoint of its own (a
TLS-terminating proxy in front of its server, whose binary lacks TLS), creates a user
with exactly the ACL of streams/acl.py, and runs publish, projection, API reads and live
push as that user over ``rediss://`` with a CA and a client certificate; the server's
ACL log then holds no refusal. A plaintext URL is refused when TLS is required, and a
client without a certificate is refused by the endpoint."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.exceptions

from herald.consumers.retention.role import Retention
from herald.streams.acl import COMMANDS, acl_line, acl_rules
from herald.streams.connection import connect, connect_sync
from herald.streams.errors import SettingsError
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.api.conftest import SECRET, SERVICE_KEY, running_role
from tests.api.live.conftest import running_live
from tests.streams.tls_proxy import Certificates, make_certificates, tls_proxy

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "tls")


@pytest.fixture
async def acl_user(settings: Settings, redis: Any) -> AsyncIterator[tuple[str, str]]:
    """A Redis user with exactly Herald's ACL for this test's prefix."""
    name, password = f"herald-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    await redis.execute_command("ACL", "SETUSER", name, *acl_rules(settings.prefix, password))
    await redis.execute_command("ACL", "LOG", "RESET")
    try:
        yield name, password
    finally:
        await redis.execute_command("ACL", "DELUSER", name)


def tls_settings(settings: Settings, certs: Certificates, port: int, user: str,
                 password: str, **extra: Any) -> Settings:
    return settings.replace(
        redis_url=f"rediss://{user}:{password}@127.0.0.1:{port}/0", redis_require_tls=True,
        redis_ca=str(certs.ca), redis_cert=str(certs.client_cert),
        redis_key=str(certs.client_key), **extra)


def test_the_readme_lists_the_exact_acl() -> None:
    text = README.read_text(encoding="utf-8")
    assert acl_line() in text
    assert len(COMMANDS) == len(set(COMMANDS))
    for dangerous in ("keys", "flushall", "flushdb", "config|set", "acl", "debug", "shutdown"):
        assert dangerous not in COMMANDS


@pytest.mark.slow
async def test_publish_project_read_and_push_over_tls_as_the_acl_user(
        settings: Settings, redis: Any, certs: Certificates, acl_user: tuple[str, str]) -> None:
    user, password = acl_user
    backend = urlsplit(settings.redis_url or "").port
    assert backend is not None
    async with tls_proxy(certs, backend) as port:
        secure = tls_settings(settings, certs, port, user, password,
                              api_keys=(SERVICE_KEY,), token_secret=SECRET,
                              action_wait_s=3.0, access_log=False)
        client = connect(secure)
        try:
            assert await client.ping()
            producer = Producer(client, secure)
            await producer.start()
            async with running_role("projector", secure, client), \
                    running_role("scheduler", secure, client), \
                    running_role("webhook", secure, client), running_live(secure) as live:
                async with live.sse("ana") as stream:
                    assert (await stream.next()).type == "ready"
                    await producer.publish(producer.envelope("ana", _note("over TLS")))
                    created = await stream.next(within=5)
                    assert created.type == "item.created"
                    assert created.data["item"]["title"] == "over TLS"
                published = await live.publish("ana", "through the API")
                assert published.status == 201
                inbox = await live.get("/v1/users/ana/inbox?limit=10")
                assert inbox.status == 200
                assert {i["title"] for i in inbox.body["items"]} >= {"over TLS"}
                read = await live.post(f"/v1/users/ana/inbox/{created.data['item']['id']}/read")
                assert read.status == 200
                later = await live.publish("ana", "in an hour", delay_seconds=3600,
                                           cancel_key="later")
                assert later.status == 201
                assert (await live.delete("/v1/scheduled/later")).status == 200
            retention = Retention(secure, client, consumer="tls", partitions=[0, 1])
            for partition in (0, 1):  # snapshot, archive, trim as the ACL user
                await retention.step(partition, force=True)
            # the sync client too (operator commands), in a thread: the proxy is on this loop
            await asyncio.to_thread(_sync_checks, secure)
        finally:
            await client.aclose()
    log = await redis.execute_command("ACL", "LOG")
    refused = [entry for entry in log if _field(entry, b"username") == user.encode()]
    objects = sorted(_field(entry, b"object") for entry in refused)
    assert objects == [b"keys", b"someone-else:key"], objects  # only the two probes


def _sync_checks(secure: Settings) -> None:
    sync = connect_sync(secure)
    try:
        assert sync.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            sync.execute_command("KEYS", "*")  # outside the ACL
        with pytest.raises(redis.exceptions.NoPermissionError):
            sync.get("someone-else:key")  # outside the prefix
    finally:
        sync.close()


def _field(entry: Any, name: bytes) -> Any:
    items = list(entry)
    return dict(zip(items[::2], items[1::2], strict=True)).get(name)


def _note(title: str) -> Any:
    from herald.streams.events import NotificationCreated

    return NotificationCreated(title=title)


async def test_plaintext_is_refused_when_tls_is_required(
        settings: Settings, certs: Certificates) -> None:
    with pytest.raises(SettingsError, match="REQUIRE_TLS"):
        settings.replace(redis_require_tls=True)  # the suite's URL is redis://
    required = settings.replace(redis_url=None, redis_require_tls=True)
    with pytest.raises(SettingsError, match="rediss://"):
        connect(required, "redis://127.0.0.1:1/0")
    with pytest.raises(SettingsError, match="go together"):
        settings.replace(redis_cert=str(certs.client_cert))


async def test_the_endpoint_refuses_a_client_without_a_certificate(
        settings: Settings, certs: Certificates, acl_user: tuple[str, str]) -> None:
    user, password = acl_user
    backend = urlsplit(settings.redis_url or "").port
    assert backend is not None
    async with tls_proxy(certs, backend) as port:
        bare = tls_settings(settings, certs, port, user, password).replace(
            redis_cert="", redis_key="")
        client = connect(bare, retry_on_error=[], retry=None)
        try:
            with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError, OSError)):
                await client.ping()
        finally:
            await client.aclose()
        unknown_ca = make_certificates(Path(str(certs.ca.parent) + "-other"))
        wrong = tls_settings(settings, certs, port, user, password).replace(
            redis_ca=str(unknown_ca.ca))
        client = connect(wrong, retry_on_error=[], retry=None)
        try:
            with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError, OSError)):
                await client.ping()  # the server's certificate is not trusted
        finally:
            await client.aclose()
