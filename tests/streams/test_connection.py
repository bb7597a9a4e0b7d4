"""Batch: one round trip, raw replies, error replies as values, reconnects."""

from __future__ import annotations

from typing import Any

import pytest
import redis as redis_lib

from herald.streams.connection import Batch, connect
from herald.streams.settings import Settings


async def test_batch_replies_raw_in_order_with_errors_as_values(redis: Any) -> None:
    await redis.set("b:str", "v")
    batch = Batch(redis)
    batch.execute_command("XADD", "b:stream", "*", "e", b"x")
    batch.execute_command("HSET", "b:str", "f", "1")  # WRONGTYPE: a string key
    batch.execute_command("GET", "b:str")
    batch.execute_command("EVALSHA", "0" * 40, 0)  # NOSCRIPT
    assert len(batch) == 4
    position, wrong, value, noscript = await batch.execute()
    assert isinstance(position, bytes) and b"-" in position
    assert isinstance(wrong, redis_lib.ResponseError) and "WRONGTYPE" in str(wrong)
    assert value == b"v"  # the commands after an error still ran, replies stay in order
    assert isinstance(noscript, redis_lib.exceptions.NoScriptError)
    assert await redis.xlen("b:stream") == 1
    assert await Batch(redis).execute() == []


async def test_batch_reconnects_after_its_connection_was_killed(
    redis: Any, settings: Settings
) -> None:
    first = Batch(redis)
    first.execute_command("SET", "b:k", "1")
    assert await first.execute() == [b"OK"]
    admin = connect(settings)
    try:
        # Kill every other client's connection: the pooled one Batch will reuse.
        await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        await admin.aclose()
    again = Batch(redis)
    again.execute_command("INCR", "b:k")
    again.execute_command("GET", "b:k")
    incremented, value = await again.execute()
    assert incremented == 2 and value == b"2"  # sent once, on a new connection


async def test_a_cancelled_batch_leaves_no_reply_behind(
    redis: Any, settings: Settings
) -> None:
    """Cancelled while waiting for replies, the connection is dropped, not pooled with
    a reply still to come that the next batch would take for its own."""
    import asyncio

    one = connect(settings.replace(redis_max_connections=1))  # the same connection again
    try:
        waiting = Batch(one)
        waiting.execute_command("BLPOP", "b:never", 2)
        task = asyncio.create_task(waiting.execute())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await redis.rpush("b:never", "late")  # would answer the BLPOP if it were still there
        await asyncio.sleep(0.1)
        after = Batch(one)
        after.execute_command("SET", "b:x", "1")
        after.execute_command("GET", "b:x")
        assert await after.execute() == [b"OK", b"1"]
        assert await redis.lrange("b:never", 0, -1) == [b"late"]
    finally:
        await one.aclose()


async def test_a_batch_keeps_its_connection_out_of_health_checks(
    redis: Any, settings: Settings
) -> None:
    """Replies read by a Batch count as the connection being alive, as redis-py's own
    reads do: no PING round trip before every later batch once the interval passed."""
    import asyncio

    one = connect(settings.replace(redis_max_connections=1))  # the same connection again
    try:
        conn = await one.connection_pool.get_connection()
        conn.next_health_check = asyncio.get_running_loop().time() + 0.05  # due soon
        await one.connection_pool.release(conn)
        first = Batch(one)
        first.execute_command("SET", "b:h", "1")
        await first.execute()
        await asyncio.sleep(0.1)  # past the old deadline
        await redis.config_resetstat()
        second = Batch(one)
        second.execute_command("GET", "b:h")
        assert await second.execute() == [b"1"]
        stats = await redis.info("commandstats")
        assert "cmdstat_ping" not in stats  # no health-check PING went before the GET
    finally:
        await one.aclose()
