"""Helpers of the cluster tests: a cluster of a test's own, settings for it, a
publisher that retries until acknowledged, and readers of leases, logs and inboxes.

Tests that kill nodes or move slots start their own cluster (never the session's,
which other tests share); the lease-balance test uses the session cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.queries import InboxQueries
from herald.streams import codec
from herald.streams.cluster_server import ClusterHandle, Node
from herald.streams.codec import ENTRY_FIELD
from herald.streams.connection import TRANSIENT_ERRORS
from herald.streams.errors import NotDurableError
from herald.streams.events import Appended, Envelope, NotificationCreated, Payload
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.helpers import make_settings

PARTITIONS = 8
LEASE_TTL_S = 2.0
RETRY_S = 0.1  # between two sends of a batch that was not acknowledged


def cluster_settings(url: str, tmp: Path, **overrides: Any) -> Settings:
    """Settings on a cluster in a fresh prefix: 8 partitions, 2 s leases."""
    values: dict[str, Any] = {"redis_cluster": True, "partitions": PARTITIONS,
                              "lease_ttl_s": LEASE_TTL_S}
    values.update(overrides)
    return make_settings(url, tmp, **values)


def slot_of(partition: int) -> int:
    """The slot every key of a partition hashes to (its tag ``{pNN}``)."""
    return key_slot(Keys().tag(partition).encode())


def partitions_on(cluster: ClusterHandle, node: Node, partitions: int = PARTITIONS) -> list[int]:
    """The partitions whose slot ``node`` serves now."""
    owners = cluster.slot_owners()
    return [p for p in range(partitions) if owners[slot_of(p)].port == node.port]


async def lease_owners(redis: Any, settings: Settings, group: str = GROUP
                       ) -> dict[int, int | None]:
    """Partition → the pid of the process holding its lease (None: free). Consumer
    names are ``host:pid:random`` (consumers/aio.py)."""
    keys = Keys(settings.prefix)
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(settings.partitions):
            pipe.get(keys.lease(group, p))
        values = await pipe.execute()
    return {p: None if v is None else int(v.decode().split(":")[1])
            for p, v in enumerate(values)}


def counts(owners: dict[int, int | None]) -> Counter[int]:
    return Counter(pid for pid in owners.values() if pid is not None)


async def log_envelopes(redis: Any, settings: Settings) -> list[Envelope]:
    """Every entry of every partition stream, decoded (sealed fields left sealed)."""
    keys = Keys(settings.prefix)
    out = []
    for p in range(settings.partitions):
        for _, fields in await redis.xrange(keys.stream(p)):
            out.append(codec.decode(fields[ENTRY_FIELD]))
    return out


async def inbox_ids(queries: InboxQueries, user: str) -> list[str]:
    """The ids of every item of a user's inbox (all pages)."""
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await queries.page(user, limit=100, cursor=cursor)
        ids += [item["id"] for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("too many pages")


async def until(check: Any, within_s: float, every: float = 0.05) -> float:
    """Await ``check()`` until truthy; seconds it took; fail after ``within_s``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"not true within {within_s}s: {check}")
        await asyncio.sleep(every)
    return time.monotonic() - start


@dataclass
class Publisher:
    """Publishes batches with an idempotency key on every event and sends a batch that
    was not acknowledged (a transient Redis error, or NotDurableError) again, the same
    envelopes, until it is or ``batch_timeout_s`` runs out. Records what was
    acknowledged and what it went through."""

    producer: Producer
    users: Sequence[str]
    batch_timeout_s: float = 30.0
    acked: dict[str, Appended] = field(default_factory=dict)  # envelope id → its append
    user_of: dict[str, str] = field(default_factory=dict)  # envelope id → user
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # error type → times seen
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds from first send to ack

    def envelope(self, payload: Payload | None = None, user: str | None = None) -> Envelope:
        n = self.sent
        self.sent += 1
        user = user or self.users[n % len(self.users)]
        payload = payload or NotificationCreated(title=f"n{n}", body="x" * 40)
        return self.producer.envelope(user, payload, idempotency_key=f"key-{n}")

    async def publish(self, envelopes: Sequence[Envelope]) -> list[Appended]:
        started = time.monotonic()
        deadline = started + self.batch_timeout_s
        while True:
            try:
                appended = await self.producer.publish_many(envelopes)
                self.latencies.append(time.monotonic() - started)
                break
            except (*TRANSIENT_ERRORS, NotDurableError) as exc:
                self.errors[type(exc).__name__] += 1
                if time.monotonic() > deadline:
                    raise AssertionError(f"a batch was never acknowledged: {exc!r}") from exc
                self.retries += 1
                await asyncio.sleep(RETRY_S)
        for env, a in zip(envelopes, appended, strict=True):
            assert a.id == env.id, "an idempotency key answered another event"
            self.acked[a.id] = a
            self.user_of[a.id] = env.user
        return appended

    async def run(self, count: int, seconds: float, batch: int = 4, pause_s: float = 0.02
                  ) -> None:
        """Publish ``count`` events (fewer if ``seconds`` run out first), ``batch`` per call."""
        deadline = time.monotonic() + seconds
        while self.sent < count and time.monotonic() < deadline:
            await self.publish([self.envelope() for _ in range(batch)])
            await asyncio.sleep(pause_s)

    def last_positions(self) -> list[Appended]:
        """The acknowledged appends in log order per partition (for wait_projected)."""
        return sorted(self.acked.values(), key=lambda a: (a.partition, _pos(a.position)))

    def ids_of(self, user: str) -> set[str]:
        return {i for i, u in self.user_of.items() if u == user}


def _pos(position: str) -> tuple[int, int]:
    ms, _, seq = position.partition("-")
    return int(ms), int(seq)


@pytest.fixture
def worker_logs(tmp_path: Path) -> Iterator[Path]:
    """A folder for worker logs; their tails are printed when the test fails."""
    folder = tmp_path / "logs"
    folder.mkdir()
    yield folder
    for path in sorted(folder.iterdir()):
        lines = path.read_text(errors="replace").splitlines()[-15:]
        print(f"--- {path.name} (last lines)", *lines, sep="\n")
