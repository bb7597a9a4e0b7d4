"""The server's clock, read through this process's own.

Timers that decide *when* something happens across processes — a reminder's due
time — follow the server's clock, not the local one: a worker whose clock is off by
minutes must not fire reminders minutes early or late. :class:`ServerClock` measures
the offset of the server's ``TIME`` from the local clock (at most every
:data:`REFRESH_S`, half the round trip assumed each way) and adds it to the local
time, so reading it costs no round trip.

Failure modes: a failed ``TIME`` keeps the last offset (0 at first) and raises the
Redis error to the caller, who retries as for any Redis error.
"""

from __future__ import annotations

import math
import time
from typing import Any

REFRESH_S = 10.0


class ServerClock:
    """Local time corrected by the server's (see the module docstring)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.offset_ms = 0
        self._synced_at = -math.inf

    def local_ms(self) -> int:
        """The server's time now, from the last measured offset (no round trip)."""
        return int(time.time() * 1000) + self.offset_ms

    async def now_ms(self) -> int:
        """The server's time now; measures the offset first when it is stale."""
        if time.monotonic() - self._synced_at >= REFRESH_S:
            await self.sync()
        return self.local_ms()

    async def sync(self) -> None:
        before = time.time()
        seconds, micros = await self.redis.time()
        after = time.time()
        server_ms = int(seconds) * 1000 + int(micros) // 1000
        self.offset_ms = int(server_ms - (before + after) / 2 * 1000)
        self._synced_at = time.monotonic()
