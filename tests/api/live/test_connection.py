"""LiveConnection and messages without Redis: order, no duplicates, bounded buffers,
resume hand-over, and the wire forms."""

from __future__ import annotations

import asyncio

import orjson

from herald.api.live import messages as m
from herald.api.live.connection import KEEPALIVE, SHUTDOWN, SLOW, LiveConnection


def created(position: str, title: str = "t") -> m.Message:
    return m.item_message(m.CREATED, position, {"id": "X", "title": title}, 1)


def test_wire_forms_agree() -> None:
    msg = created("1700000000000-5", "多行\nline")
    doc = orjson.loads(msg.json)
    assert doc == {"type": "item.created", "position": "1700000000000-5",
                   "item": {"id": "X", "title": "多行\nline"}, "unread_count": 1}
    lines = msg.sse.decode().split("\n")
    assert lines[:3] == ["id: 1700000000000-5", "event: item.created",
                         "data: " + msg.json.decode()]
    assert msg.sse.endswith(b"\n\n") and msg.sse.count(b"\n") == 4  # newline escaped in JSON
    assert orjson.loads(msg.text) == doc
    close = m.close(SHUTDOWN, "bye")
    assert not close.sse.startswith(b"id:") and close.position is None


def test_push_drops_old_and_duplicate_positions() -> None:
    conn = LiveConnection("u", 0, "sse", limit=10)
    conn.started = True
    assert conn.push(created("10-0"))
    assert not conn.push(created("10-0"))  # duplicate
    assert not conn.push(created("9-3"))  # older
    assert conn.push(created("10-1"))
    assert [x.position for x in conn.take()] == ["10-0", "10-1"]
    assert conn.floor_position == "10-1" and conn.take() == []


def test_full_buffer_closes_as_slow_and_drops_the_buffer() -> None:
    conn = LiveConnection("u", 0, "sse", limit=3)
    for n in range(3):
        assert conn.push(created(f"1-{n}"))
    assert not conn.push(created("1-3"))
    assert conn.reason == SLOW and conn.take() == []
    assert not conn.push(created("1-4"))
    conn.close(SHUTDOWN)
    assert conn.reason == SLOW  # the first reason wins


def test_start_drops_what_the_backlog_covered() -> None:
    conn = LiveConnection("u", 0, "sse", limit=10)
    for position in ("5-0", "6-0", "7-0"):  # queued while the backlog was read
        conn.push(created(position))
    conn.start("6-0")
    assert [x.position for x in conn.take()] == ["7-0"]
    assert conn.started and conn.floor_position == "7-0"


def test_idle_heartbeat_moves_the_floor_or_keeps_alive() -> None:
    conn = LiveConnection("u", 0, "sse", limit=10)
    assert not conn.push_idle("3-0", 0.0)  # not started: no heartbeats during resume
    conn.start("2-0")
    assert conn.push_idle("3-0", 0.0)
    beat = conn.take()[0]
    assert beat.type == m.HEARTBEAT and beat.position == "3-0"
    assert conn.push_idle("3-0", 0.0)
    assert conn.take() == [KEEPALIVE]
    conn.push(created("4-0"))
    assert not conn.push_idle("5-0", 0.0)  # something queued: no heartbeat needed


async def test_wait_wakes_on_push_and_close() -> None:
    conn = LiveConnection("u", 0, "ws", limit=10)
    waiter = asyncio.create_task(conn.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    conn.push(created("1-0"))
    await asyncio.wait_for(waiter, 1)
    conn.take()
    waiter = asyncio.create_task(conn.wait())
    await asyncio.sleep(0)
    conn.close(SHUTDOWN)
    await asyncio.wait_for(waiter, 1)
    assert conn.closed
