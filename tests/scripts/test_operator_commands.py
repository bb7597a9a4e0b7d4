"""The operator commands: worker, status, replay, dlq (through the real CLI)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import orjson
import pytest

from herald.consumers.projection.queries import InboxQueries
from herald.streams.connection import connect
from herald.streams.events import NotificationCreated, NotificationScheduled
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.consumers.helpers import REPO, start_projector, wait_projected, worker_env


class Cli:
    """``herald ...`` in a subprocess (each command configures logging for its process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.out = self.err = ""

    def __call__(self, *args: str) -> int:
        done = subprocess.run([sys.executable, "-m", "herald.cli", *args], cwd=REPO,
                              env=worker_env(self.settings), capture_output=True, text=True,
                              timeout=60)
        self.out, self.err = done.stdout, done.stderr
        return done.returncode


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli(settings)


def project(settings: Settings, users: list[str], raw: list[bytes] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """Publish one item per user (and raw entries to alice's partition), project them."""

    async def go() -> dict[str, Any]:
        redis = connect(settings)
        producer, queries = Producer(redis, settings), InboxQueries(redis, settings)
        for body in raw:
            await redis.xadd(Keys(settings.prefix).stream(producer.partition("alice")),
                             {b"e": body})
        envs = [producer.envelope(u, NotificationCreated(title=f"for {u}")) for u in users]
        appended = await producer.publish_many(envs)
        stop = asyncio.Event()
        _, task = start_projector(settings, redis, stop)
        await wait_projected(queries, appended)
        stop.set()
        await task
        first = await queries.page(users[0])
        await redis.aclose()
        return {"appended": appended, "item": first.items[0]}

    return asyncio.run(go())


def test_worker_refuses_an_unknown_role(cli: Cli) -> None:
    assert cli("worker", "--roles", "projector,nope") == 2
    assert "unknown role 'nope'" in cli.err and "known roles:" in cli.err
    assert "projector" in cli.err.split("known roles:")[1]


def test_status_shows_checkpoints_owners_and_totals(cli: Cli) -> None:
    done = project(cli.settings, ["alice", "bob", "carol"])
    assert cli("status", "--json") == 0
    doc = orjson.loads(cli.out)
    assert doc["totals"]["length"] == 3 and doc["totals"]["projector_lag"] == 0
    assert doc["totals"]["projector_unowned"] == cli.settings.partitions  # worker stopped
    by_part = {r["partition"]: r for r in doc["partitions"]}
    last = {a.partition: a.position for a in done["appended"]}  # in order per partition
    for p, position in last.items():
        assert by_part[p]["checkpoint"] == position
    assert cli("status") == 0
    assert "(nobody)" in cli.out and "total: 3 entries" in cli.out


def test_status_shows_the_schedule_depth(cli: Cli) -> None:
    async def go() -> None:
        redis = connect(cli.settings)
        producer, queries = Producer(redis, cli.settings), InboxQueries(redis, cli.settings)
        due = int(time.time() * 1000) + 3_600_000
        appended = await producer.publish_many([
            producer.envelope(u, NotificationScheduled(title="pay your order", deliver_at=due))
            for u in ("dora", "eve")
        ])
        stop = asyncio.Event()
        _, task = start_projector(cli.settings, redis, stop)
        await wait_projected(queries, appended)
        stop.set()
        await task
        await redis.aclose()

    asyncio.run(go())
    assert cli("status", "--json") == 0
    assert orjson.loads(cli.out)["totals"]["scheduled"] == 2
    assert cli("status") == 0
    assert "2 scheduled" in cli.out


def test_replay_and_verify(cli: Cli) -> None:
    done = project(cli.settings, ["alice", "bob"])
    assert cli("replay", "--quiet") == 0
    assert "replayed 2 events" in cli.out
    assert cli("replay", "--verify", "--quiet") == 0
    assert "identical" in cli.out

    async def tamper() -> None:
        redis = connect(cli.settings)
        keys, p = Keys(cli.settings.prefix), Producer(redis, cli.settings).partition("alice")
        ns = (await redis.get(keys.partition_view(p))).decode()
        await redis.hset(keys.item(p, done["item"]["id"], ns), "b", "changed")
        await redis.aclose()

    asyncio.run(tamper())
    assert cli("replay", "--verify", "--quiet") == 1
    assert f"item:{done['item']['id']}: field 'b': live=b'changed' replay=b''" in cli.out
    assert "1 differences" in cli.err
    assert cli("replay", "--partition", "99") == 2


def test_dlq_list_retry_drop(cli: Cli) -> None:
    project(cli.settings, ["alice"], raw=[b"\xc1", b"\x93not-an-event"])
    assert cli("dlq", "list") == 0
    lines = cli.out.splitlines()
    assert lines[-1] == "2 dead letters" and all("malformed" in line for line in lines[:2])
    assert cli("dlq", "retry") == 2  # needs --id or --all
    assert cli("dlq", "retry", "--all") == 1  # still garbage: fails again, kept
    assert "failed again" in cli.out
    assert cli("dlq", "list", "--json") == 0
    letters = [orjson.loads(line) for line in cli.out.splitlines()]
    assert len(letters) == 2 and {x["group"] for x in letters} == {"projector"}
    assert cli("dlq", "drop", "--id", f"{letters[0]['partition']}:{letters[0]['id']}") == 0
    assert cli("dlq", "drop", "--id", "0:1-1") == 2
    assert cli("dlq", "list") == 0
    assert cli.out.splitlines()[-1] == "1 dead letters"
