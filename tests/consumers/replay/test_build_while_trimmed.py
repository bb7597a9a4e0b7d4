"""A build (snapshot, replay, verify) that reads the stream while retention in another
process trims it: the entries trimmed ahead of its reads come from the archive.

The chaos suite's worker kills found snapshots without inboxes: a snapshotter read the
stream chunk by chunk while another worker, which had taken over the partition's
retention lease, archived and trimmed ahead of it; the next read started after the
trimmed entries, and every snapshot built on that one lacked them."""

from __future__ import annotations

from typing import Any

from herald.consumers.replay import builder as builder_module
from herald.consumers.replay.builder import Builder
from herald.consumers.retention.role import Retention
from herald.streams.connection import text
from herald.streams.events import NotificationCreated
from tests.consumers.helpers.harness import Harness

COUNT = 3 * builder_module.BUILD_CHUNK - 40  # three chunks; the trim lands in the third


async def test_a_build_reads_what_was_trimmed_meanwhile_from_the_archive(h: Harness) -> None:
    h.start_projector()
    for i in range(COUNT):
        await h.publish("alice", NotificationCreated(title=f"n{i}"))
    await h.projected("alice")
    p = h.producer.partition("alice")
    positions = [text(eid) for eid, _ in await h.redis.xrange(h.keys.stream(p))]
    assert len(positions) == COUNT
    retention = Retention(h.settings, h.redis)
    report = await retention.step(p, force=True, trim=False)  # a snapshot to trim below
    assert report.snapshot == positions[-1]

    builder = Builder(h.redis, h.settings)
    resend = builder.applier.resend
    trimmed: list[Any] = []

    async def trim_once(*args: Any) -> Any:
        # after the first chunk's apply, when the second chunk has been read: another
        # process archives and trims into the third chunk, ahead of this build
        if not trimmed:
            trimmed.append(await retention.archiver.archive(
                p, positions[2 * builder_module.BUILD_CHUNK + 50]))
        return await resend(*args)

    builder.applier.resend = trim_once  # type: ignore[method-assign]
    await builder.build(p, "t")
    assert trimmed and trimmed[0].entries > 2 * builder_module.BUILD_CHUNK
    assert await h.redis.get(h.keys.checkpoint(p, "t")) == positions[-1].encode()
    live = await h.redis.zrange(h.keys.inbox(p, "alice"), 0, -1)
    rebuilt = await h.redis.zrange(h.keys.inbox(p, "alice", "t"), 0, -1)
    assert len(rebuilt) == min(COUNT, h.settings.inbox_max) and rebuilt == live
