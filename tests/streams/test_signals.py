"""SignalSubscriber: its own unsubscribes are not taken for a slot move."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.streams.signals import SignalSubscriber


@pytest.mark.cluster
async def test_leaving_and_joining_again_at_once_is_not_a_lost_channel(redis: Any) -> None:
    """A channel left and wanted again before the server confirmed the leave (the live
    hub drops an idle feed while a new waiter arrives): the late ``sunsubscribe`` is
    ours, so no rebuild, and messages keep arriving on the one subscription."""
    channel = "{herald:p:7}:test-signal"
    heard: asyncio.Queue[bytes] = asyncio.Queue()
    confirmed: asyncio.Queue[str] = asyncio.Queue()
    signals = SignalSubscriber(redis, lambda _c, data: heard.put_nowait(data),
                               confirmed.put_nowait)
    try:
        await signals.subscribe([channel])
        assert await asyncio.wait_for(confirmed.get(), 5) == channel
        link = next(link for link in signals._links.values() if channel in link.channels)
        read = link.pubsub.get_message

        async def slow_reader(**kwargs: Any) -> Any:  # a busy loop reads the leave late
            message = await read(**kwargs)
            if message is not None and message.get("type") == "sunsubscribe":
                await asyncio.sleep(0.2)
            return message

        link.pubsub.get_message = slow_reader
        await redis.spublish(channel, b"before")  # ends the read already waiting
        assert await asyncio.wait_for(heard.get(), 5) == b"before"
        await signals.unsubscribe([channel])
        await signals.subscribe([channel])
        assert await asyncio.wait_for(confirmed.get(), 5) == channel
        await asyncio.sleep(0.3)  # the leave's confirmation has been read by now
        assert signals.reconnects == 0
        assert signals.channels == {channel}
        await redis.spublish(channel, b"after")
        assert await asyncio.wait_for(heard.get(), 5) == b"after"
        assert confirmed.empty()  # no re-subscription behind our back
    finally:
        await signals.stop()
