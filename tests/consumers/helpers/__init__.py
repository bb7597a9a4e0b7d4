"""Shared helpers of the consumer tests: settings, runtimes, waiting, reading state."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from herald.consumers.group.runtime import GroupRuntime
from herald.consumers.projection.projector import projector_factory
from herald.consumers.projection.queries import STATUSES, InboxQueries
from herald.streams.events import Appended
from herald.streams.settings import Settings, SnapshotEvery

REPO = Path(__file__).resolve().parents[3]


def make_settings(redis_url: str, tmp: Path | None = None, **overrides: Any) -> Settings:
    """Settings in a fresh prefix (hypothesis examples cannot use function fixtures)."""
    values: dict[str, Any] = {
        "redis_url": redis_url, "prefix": f"t{uuid.uuid4().hex[:12]}", "partitions": 4,
        "log_format": "console", "log_level": "warning", "lease_ttl_s": 1.0,
        "claim_idle_s": 30.0,
    }
    if tmp is not None:
        values["data_dir"] = tmp / "data"
    values.update(overrides)
    return Settings.from_env({}, **values)


def start_projector(settings: Settings, redis: Any, stop: asyncio.Event, **kwargs: Any
                    ) -> tuple[GroupRuntime, asyncio.Task[None]]:
    kwargs.setdefault("block_ms", 100)
    runtime = GroupRuntime(settings, redis, projector_factory, **kwargs)
    return runtime, asyncio.create_task(runtime.run(stop))


async def wait_projected(queries: InboxQueries, appended: Sequence[Appended],
                         timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Until the last position of every partition touched is projected; else fail."""
    last: dict[int, str] = {}
    for a in appended:
        last[a.partition] = a.position  # appended in order per partition
    for p, position in last.items():
        assert await queries.wait_for(p, position, timeout), f"partition {p} not projected"


async def inbox_state(queries: InboxQueries, users: Sequence[str]) -> dict[str, Any]:
    """Every user's items per status (all pages, page size 7) and unread count."""
    out: dict[str, Any] = {}
    for user in users:
        per_status: dict[str, list[dict[str, Any]]] = {}
        for status in STATUSES:
            items: list[dict[str, Any]] = []
            cursor = None
            for _ in range(1000):
                page = await queries.page(user, status=status, limit=7, cursor=cursor)
                items += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
            per_status[status] = items
        out[user] = {"items": per_status, "unread": await queries.unread_count(user),
                     "unseen": (await queries.page(user, limit=1)).unseen_count,
                     "counts": await queries.counts(user),
                     "topics": await queries.topics(user)}
    return out


REGISTRY_KINDS = ("phone", "locale", "wecom_userid")


async def registry_state(redis: Any, settings: Settings, users: Sequence[str]
                         ) -> dict[str, Any]:
    """What the projection says of the registry, shaped as RegistryModel.state."""
    from herald.consumers.delivery.queries import DeliveryQueries
    from herald.consumers.templates.store import TemplateStore

    queries = DeliveryQueries(redis, settings)
    devices, contacts = {}, {}
    for user in users:
        devices[user] = dict(sorted((d["id"], d["platform"])
                                    for d in await queries.devices(user)))
        profile = await queries.profile(user)
        contacts[user] = {k: profile.get(k) for k in REGISTRY_KINDS}
    templates = {t["id"]: t["latest"] for t in await TemplateStore(redis, settings).list()}
    return {"devices": devices, "contacts": contacts, "templates": dict(sorted(templates.items()))}


def model_state(model: Any, users: Sequence[str]) -> dict[str, Any]:
    return {u: {"items": {s: model.inbox(u, s) for s in STATUSES}, "unread": model.unread(u),
                "unseen": model.unseen(u), "counts": model.counts(u),
                "topics": sorted(model.topics.get(u, ()))}
            for u in users}


def _env_text(value: Any) -> str:
    if isinstance(value, SnapshotEvery):
        return ",".join([*([str(value.events)] if value.events else []),
                         *([f"{value.seconds}s"] if value.seconds else [])])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value}s"  # every float setting is a duration
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a ``herald worker`` subprocess with exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value != f.default and value is not None:
            env[f.metadata["env"]] = _env_text(value)
    env.update({"HERALD_LOG_FORMAT": "json", "HERALD_LOG_LEVEL": "warning",
                "PYTHONPATH": str(REPO)})
    env.update(extra)
    return env


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "herald.cli", "worker", *args]


def spawn_worker(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """``herald worker`` in a subprocess, output to ``log_path`` (kill it in a finally)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(worker_command(*args), cwd=REPO, env=worker_env(settings),
                                stdout=log, stderr=log)


def reap(*procs: subprocess.Popen[bytes]) -> None:
    """Kill what is still running and wait for it."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
