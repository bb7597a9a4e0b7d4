"""Crash safety: an archiver killed (SIGKILL) at random moments and run again loses and
duplicates nothing; the log reads back exactly."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from herald.streams.archive.reader import LogReader
from herald.streams.archive.segments import SegmentStore
from herald.streams.archive.storage import open_storage
from herald.streams.keys import Keys
from herald.streams.settings import Settings
from tests.streams.archive.helpers import PARTITION, append, read_log, stream_entries, union

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[3]
KILLS = 6  # at most this many kills
BUDGET_S = 20.0  # and no more kill rounds after this long
SEGMENT = 40  # entries per segment: many segments, many trims


async def _run(args: list[str], kill_after: float | None) -> tuple[bool, int | None]:
    """Run the child; kill it ``kill_after`` seconds after it is ready. (killed, rc)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"ready":
        await proc.wait()
        raise AssertionError(f"child failed: {(await proc.stderr.read()).decode()}")
    killed = False
    if kill_after is not None:
        try:
            await asyncio.wait_for(proc.wait(), kill_after)
        except TimeoutError:
            proc.send_signal(signal.SIGKILL)
            killed = True
    rc = await proc.wait()
    if not killed and rc != 0:
        raise AssertionError(f"child failed: {(await proc.stderr.read()).decode()}")
    return killed, rc


async def test_archiver_killed_at_random_moments(
    redis: Any, keys: Keys, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    entries = await append(redis, keys, 3000)
    url = (tmp_path / "archive").as_uri()
    uptos = [entries[i][0] for i in range(99, len(entries), 100)]
    args = [redis_url, settings.prefix, url, str(PARTITION), str(SEGMENT), *uptos]
    kills = 0
    started = time.monotonic()
    while kills < KILLS and time.monotonic() - started < BUDGET_S:
        killed, _ = await _run(args, rng.uniform(0.0, 0.15))
        kills += killed
        if not killed:
            break
    await _run(args, None)  # to completion
    store = SegmentStore(open_storage(url))
    assert await union(redis, keys, store) == entries, f"seed {seed}, {kills} kills"
    assert await stream_entries(redis, keys) == []
    assert await read_log(LogReader(redis, keys, store), size=77) == entries, f"seed {seed}"
    assert kills > 0, "the child always finished before its kill: nothing was tested"
