"""Small asyncio helpers of the consumer room: names, waits, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket


def consumer_name() -> str:
    """A consumer name unique to this process and runtime: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def check_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed.

    redis-py (8.1) occasionally returns normally from a command whose task was
    cancelled meanwhile; the task then still reports ``cancelling()``. A cancelled
    runtime must behave like a crashed one (no ack, no release), so the loops check.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def sleep_unless(event: asyncio.Event, seconds: float, *more: asyncio.Event) -> None:
    """Sleep up to ``seconds``; return early when ``event`` (or one of ``more``) is set.

    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` can
    swallow a cancellation that races with the event being set.
    """
    if any(e.is_set() for e in more):
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            if not more:
                await event.wait()
                return
            waiters = [asyncio.ensure_future(e.wait()) for e in (event, *more)]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
