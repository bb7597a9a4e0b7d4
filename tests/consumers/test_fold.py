"""The fold path of a build writes exactly what the apply script writes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from consumers import builder as builder_mod
from consumers import fold as fold_mod
from consumers.builder import Builder
from consumers.verify import Verifier, diff
from streams.events import (
    AllRead,
    NotificationArchived,
    NotificationCreated,
    NotificationDeleted,
    NotificationRead,
    NotificationUnread,
    Payload,
)
from streams.producer import Producer
from streams.settings import Settings

USERS = [f"user-{i}" for i in range(12)]


def _payload(rng: random.Random, created: list[str], positions: list[str]) -> Payload:
    r = rng.random()
    if r < 0.4 or not created:
        channels = ("in_app", "sms") if rng.random() < 0.2 else ("in_app",)
        explicit = rng.choice(created) if created and rng.random() < 0.1 else None
        return NotificationCreated(title=f"t{len(created)}", body="b" * rng.randrange(3),
                                   data={"n": len(created)} if rng.random() < 0.5 else {},
                                   channels=channels, notification_id=explicit)
    if r < 0.93:
        cls = rng.choice([NotificationRead, NotificationUnread, NotificationArchived,
                          NotificationDeleted])
        return cls(notification_id=rng.choice(created))
    return AllRead(up_to=rng.choice(positions) if positions and rng.random() < 0.5 else None)


async def _publish(producer: Producer, rng: random.Random, count: int) -> None:
    created: list[str] = []
    positions: list[str] = []
    for _ in range(count):
        # Items and their users stay together: an op names an item of its own user
        # most of the time, and sometimes another user's (refused by the projection).
        user = rng.choice(USERS)
        env = producer.envelope(user, _payload(rng, created, positions))
        if isinstance(env.payload, NotificationCreated) and env.payload.notification_id is None:
            created.append(env.id)
        positions.append((await producer.publish(env)).position)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_folded_build_equals_the_scripted_build(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    cfg = settings.replace(inbox_max=3)
    await _publish(Producer(redis, cfg), random.Random(seed), 400)
    # Small pages and flushes: many flushes, items changed across flushes.
    monkeypatch.setattr(builder_mod, "BUILD_CHUNK", 7)
    monkeypatch.setattr(builder_mod, "FOLD_FLUSH", 20)
    folded = await Builder(redis, cfg).build_many(range(cfg.partitions), "fold")
    scripted = await Builder(redis, cfg, fold=False).build_many(range(cfg.partitions), "lua")
    assert folded.entries == scripted.entries == 400
    verifier = Verifier(redis, cfg)
    compared = 0
    for p in range(cfg.partitions):
        a, b = await verifier.snapshot(p, "fold"), await verifier.snapshot(p, "lua")
        assert diff(p, b, a) == []
        compared += len(a)
    assert compared > 100  # items, inbox sets, user states, statuses, checkpoints


async def test_a_fold_that_outgrows_its_bound_goes_on_with_the_script(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = settings.replace(inbox_max=50)
    await _publish(Producer(redis, cfg), random.Random(7), 300)
    monkeypatch.setattr(builder_mod, "BUILD_CHUNK", 5)
    monkeypatch.setattr(fold_mod, "MAX_ITEMS", 4)  # full after a few creations
    folded = await Builder(redis, cfg).build_many(range(cfg.partitions), "fold")
    scripted = await Builder(redis, cfg, fold=False).build_many(range(cfg.partitions), "lua")
    assert folded.entries == scripted.entries == 300
    verifier = Verifier(redis, cfg)
    for p in range(cfg.partitions):
        assert diff(p, await verifier.snapshot(p, "lua"), await verifier.snapshot(p, "fold")) == []
