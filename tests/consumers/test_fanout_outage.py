"""The fanout role outlives an outage of the store, as every role must: it waited with
a back-off but ended the worker at the first connection refused (the chaos suite's
server kills found both workers gone after the first kill)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from herald.consumers.fanout import worker
from herald.streams.server import free_port
from herald.streams.settings import Settings


async def test_the_fanout_role_waits_through_a_store_that_refuses(settings: Settings) -> None:
    down = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)  # nobody listens
    stop = asyncio.Event()
    role = asyncio.create_task(worker.run(settings, down, stop))
    try:
        await asyncio.sleep(2 * worker.BACKOFF_S + 0.5)
        assert not role.done(), role.exception() if role.done() else None
    finally:
        stop.set()
        await asyncio.wait_for(role, 5)
        await down.aclose()
