"""Entries XADDed without Herald's producer: each is applied exactly once, or
dead-lettered with the rule it breaks (PROTOCOL.md) — and replay decides the same."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.consumers.group.dead_letters import DeadLetters
from herald.consumers.projection.queries import InboxQueries
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.streams import codec
from herald.streams.events import (
    Envelope,
    NotificationCreated,
    NotificationRead,
    NotificationUnread,
    new_envelope,
)
from herald.streams.keys import Keys
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings
from tests.consumers.helpers import REPO, start_projector, worker_env
from tests.protocol.test_vectors import FILES


class Log:
    """Plain XADDs into a prefix's streams, and the projector over them."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings, self.redis = settings, redis
        self.keys = Keys(settings.prefix)
        self.queries = InboxQueries(redis, settings)
        self.last: dict[int, str] = {}

    async def xadd(self, partition: int, fields: dict[bytes, bytes]) -> str:
        position = (await self.redis.xadd(self.keys.stream(partition), fields)).decode()
        self.last[partition] = position
        return position

    async def entry(self, env: Envelope) -> str:
        return await self.xadd(partition_for(env.user, self.settings.partitions),
                               {b"e": codec.encode(env)})

    async def projected(self) -> None:
        for p, position in self.last.items():
            assert await self.queries.wait_for(p, position, 15), f"partition {p} not projected"

    async def letters(self) -> dict[str, str]:
        found = await DeadLetters(self.redis, self.settings).letters(
            range(self.settings.partitions), limit=1000)
        return {x.position: x.reason for x in found}


@pytest.fixture
async def log(settings: Settings, redis: Any) -> AsyncIterator[Log]:
    stop = asyncio.Event()
    _, task = start_projector(settings.replace(partitions=64), redis, stop)
    try:
        yield Log(settings.replace(partitions=64), redis)
    finally:
        stop.set()
        await task


async def herald(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``herald ARGS`` in a subprocess (off the event loop: the projector runs on it)."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "herald.cli", *args], cwd=REPO,
        env=worker_env(settings), capture_output=True, text=True, timeout=60)


async def dlq_list(settings: Settings) -> list[dict[str, Any]]:
    done = await herald(settings, "dlq", "list", "--json", "--limit", "1000")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_malformed_plain_xadds_are_dead_lettered_with_the_rule_named(log: Log) -> None:
    doc = FILES["rejections"]
    p = doc["partition"]
    named: dict[str, dict[str, Any]] = {}
    for case in doc["cases"]:
        if "fields" in case:
            fields = {k.encode(): bytes.fromhex(v) for k, v in case["fields"].items()}
        else:
            fields = {b"e": bytes.fromhex(case["entry_hex"])}
        named[await log.xadd(p, fields)] = case
    first, copy = [await log.xadd(p, {b"e": bytes.fromhex(raw)})
                   for raw in doc["duplicate"]["entries_hex"]]
    await log.projected()
    letters = {x["position"]: x for x in await dlq_list(log.settings)}
    # Every rejected entry has its letter, naming its rule, and the copy of an applied id.
    assert set(letters) == {*named, copy}
    for position, case in named.items():
        reason = letters[position]["reason"]
        assert reason.startswith(case["reason"] + ": ") and case["detail"] in reason, case
    # An entry of other fields keeps them, packed, as its letter's bytes.
    kept = {x.position: x.raw for x in await DeadLetters(log.redis, log.settings).letters(
        [p], limit=1000)}
    for position, case in named.items():
        if "fields" in case:
            assert codec.unpack_binary(kept[position]) == {
                k.encode(): bytes.fromhex(v) for k, v in case["fields"].items()}
        else:
            assert kept[position] == bytes.fromhex(case["entry_hex"])
    assert letters[copy]["reason"].startswith("duplicate: ")
    assert first in letters[copy]["reason"]
    # Retried, every letter fails again with the same rule (nothing about them changed).
    retried = await herald(log.settings, "dlq", "retry", "--all")
    assert retried.returncode == 1, retried.stderr
    again = {x["position"]: x["reason"].split(":")[0] for x in await dlq_list(log.settings)}
    assert again == {p: r["reason"].split(":")[0] for p, r in letters.items()}
    # The one good event was applied once: one item in alice's inbox.
    page = await log.queries.page("alice")
    assert len(page.items) == 1 and await log.queries.unread_count("alice") == 1


async def test_a_duplicate_is_never_applied_twice_and_replay_decides_alike(
        settings: Settings, redis: Any) -> None:
    """Read → unread → the read's copy: applied twice it would leave the item read. The
    window is 1 s of log time; a copy older than two windows is outside it (applied, a
    no-op here). Verify and replay, long after, decide every entry exactly as live did."""
    settings = settings.replace(dedupe_window_s=1.0)
    stop = asyncio.Event()
    _, task = start_projector(settings, redis, stop)
    log = Log(settings, redis)
    try:
        def env(payload: Any) -> Envelope:
            return new_envelope("carol", payload, settings.partitions)

        created = env(NotificationCreated(title="once"))
        read = env(NotificationRead(notification_id=created.id))
        unread = env(NotificationUnread(notification_id=created.id))
        positions = [await log.entry(e) for e in (created, created, read, unread, read)]
        await log.projected()
        item = (await log.queries.page("carol")).items
        assert [i["id"] for i in item] == [created.id] and item[0]["read_at"] is None
        await asyncio.sleep(2.2)  # two windows of log time later
        late = await log.entry(unread)
        await log.projected()
        letters = await log.letters()
        assert sorted(letters) == sorted([positions[1], positions[4]])
        assert letters[positions[4]].startswith(f"duplicate: its event id was already "
                                                f"applied at {positions[2]}")
        assert late not in letters
        await asyncio.sleep(1.5)  # wall-clock time passes: nothing expires by it
        report = await Verifier(redis, settings).run()
        assert report.identical, report.differences
        assert report.stats.skipped == 2
    finally:
        stop.set()
        await task
    before = await log.queries.page("carol")
    report = await Replay(redis, settings).run()
    assert report.stats.skipped == 2
    assert (await log.queries.page("carol")).items == before.items
