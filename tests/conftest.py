"""Test fixtures: one private server per session, one key prefix per test.

The server is started by Herald's own launcher on a free port in a temporary
folder (or ``HERALD_TEST_REDIS_URL`` is used). Tests never flush: each works in a
fresh ``HERALD_PREFIX``, so no test sees another's keys and no server the suite
did not start is touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies._internal.random  # noqa: F401  (see below)
import pytest

from herald.streams import codec, sealing
from herald.streams.cluster_server import ClusterHandle, start_cluster
from herald.streams.connection import connect, connect_sync
from herald.streams.events import Envelope
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.server import ServerHandle, start_server
from herald.streams.settings import Settings

# CPython 3.11.7 can fail to compile a module that is first imported deep in a test's
# stack ("SystemError: AST constructor recursion depth mismatch", in pytest's assertion
# rewriter); hypothesis imports its random strategy lazily, on first use: it is
# imported above, at the top of the stack.


async def log_entries(redis: Any, settings: Settings, partition: int) -> list[Envelope]:
    """A partition's log as it was published: every entry decoded and its sealed fields
    opened with the user's data key (streams/sealing.py)."""
    store = KeyStore(redis, settings)
    out = []
    for _, fields in await redis.xrange(Keys(settings.prefix).stream(partition)):
        opened = await sealing.opened(store, codec.decode(fields[b"e"]))
        assert opened is not None, "an entry whose data key is gone"
        out.append(opened)
    return out


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    url = os.environ.get("HERALD_TEST_REDIS_URL")
    if url:
        yield ServerHandle(url=url)
        return
    handle = start_server(tmp_path_factory.mktemp("redis-data"), die_with_parent=True)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    """A private 3-primary, 3-replica cluster, started the first time a test needs it."""
    handle = start_cluster(tmp_path_factory.mktemp("cluster"), die_with_parent=True)
    try:
        yield handle
    finally:
        handle.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``cluster`` run twice: on the standalone server and on the cluster."""
    if metafunc.definition.get_closest_marker("cluster") and \
            "deployment" in metafunc.fixturenames:
        metafunc.parametrize("deployment", ["standalone", "cluster"], indirect=True)


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> str:
    """``standalone`` (the default) or ``cluster`` for tests marked ``cluster``."""
    return str(getattr(request, "param", "standalone"))


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, deployment: str) -> str:
    if deployment == "cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture
def settings(redis_url: str, deployment: str, tmp_path: Path) -> Settings:
    """Settings in a fresh key prefix on the session server; small partition count."""
    return Settings.from_env(
        {},
        redis_url=redis_url,
        redis_cluster=deployment == "cluster",
        data_dir=tmp_path / "data",
        prefix=f"t{uuid.uuid4().hex[:12]}",
        partitions=8,
        log_format="console",
        # every test receiver listens on 127.0.0.1, which the SSRF guard refuses by
        # default (tests/consumers/channels/test_egress.py checks that refusal)
        webhook_allow_cidrs="127.0.0.1/32",
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Any]:
    client = connect(settings)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[Any]:
    client = connect_sync(settings)
    try:
        yield client
    finally:
        client.close()
