"""The journal against a real stream: order, limits, undecodable entries, holes."""

from __future__ import annotations

from typing import Any

from herald.api.live.journal import Journal
from herald.streams import codec
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings


async def _append(redis: Any, settings: Settings, count: int) -> tuple[Keys, int, list[str]]:
    producer = Producer(redis, settings)
    await producer.start()
    positions = []
    for n in range(count):
        appended = await producer.publish(producer.envelope(
            "jo", NotificationCreated(title=f"t{n}")))
        positions.append(appended.position)
    return Keys(settings.prefix), producer.partition("jo"), positions


async def test_reads_in_order_within_the_limit(redis: Any, settings: Settings) -> None:
    keys, p, positions = await _append(redis, settings, 5)
    await redis.xadd(keys.stream(p), {codec.ENTRY_FIELD: b"\xc1 not msgpack"})
    journal = Journal(redis, keys)
    everything = await journal.read(p, "0-0", "+", 100)
    assert [e.position for e in everything.entries] == positions  # the bad one skipped
    assert everything.complete
    part = await journal.read(p, positions[0], positions[-1], 2)
    assert [e.position for e in part.entries] == positions[1:3]
    assert not part.complete and part.last == positions[2]
    exact = await journal.read(p, positions[0], positions[2], 2)
    assert exact.complete and exact.last == positions[2]
    assert [e.position for e in exact.entries] == positions[1:3]


async def test_holes_after_a_position_are_detected(redis: Any, settings: Settings) -> None:
    keys, p, positions = await _append(redis, settings, 6)
    journal = Journal(redis, keys)
    assert await journal.intact_after((p + 1) % settings.partitions, "0-0")  # no stream yet
    assert await journal.intact_after(p, positions[0])
    await redis.xtrim(keys.stream(p), maxlen=5, approximate=False)  # drops positions[0]
    assert await journal.intact_after(p, positions[1])
    assert not await journal.intact_after(p, "0-0")
    await redis.xdel(keys.stream(p), positions[4])
    assert not await journal.intact_after(p, positions[3])
    assert await journal.intact_after(p, positions[5])


async def test_with_a_reader_entries_consumers_reject_are_skipped(
        redis: Any, settings: Settings) -> None:
    """Live push tells of nothing the projector dead-letters: another partition's user,
    an entry of other fields than ``e``."""
    from herald.streams.entries import EntryReader
    from herald.streams.events import new_envelope

    keys, p, positions = await _append(redis, settings, 2)
    stranger = next(u for u in (f"u{n}" for n in range(100))
                    if Producer(redis, settings).partition(u) != p)
    foreign = new_envelope(stranger, NotificationCreated(title="not here"), settings.partitions)
    await redis.xadd(keys.stream(p), {codec.ENTRY_FIELD: codec.encode(foreign)})
    await redis.xadd(keys.stream(p), {codec.ENTRY_FIELD: codec.encode(foreign), "x": "1"})
    plain = await Journal(redis, keys).read(p, "0-0", "+", 100)
    assert len(plain.entries) == 3  # decodable: only the codec checks it
    checked = await Journal(redis, keys, EntryReader(settings)).read(p, "0-0", "+", 100)
    assert [e.position for e in checked.entries] == positions
