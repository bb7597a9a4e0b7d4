"""Fixtures of the consumer tests (helpers: tests/consumers/helpers/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.streams.connection import connect
from herald.streams.settings import Settings
from tests.consumers.helpers import make_settings
from tests.consumers.helpers.harness import Harness


@pytest.fixture
def sched_settings(redis_url: str, deployment: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path, partitions=4, lease_ttl_s=1.0,
                         redis_cluster=deployment == "cluster")


@pytest.fixture
async def h(sched_settings: Settings) -> AsyncIterator[Harness]:
    client = connect(sched_settings)
    harness = Harness(sched_settings, client)
    try:
        yield harness
    finally:
        try:
            await harness.close()
        finally:
            await client.aclose()
