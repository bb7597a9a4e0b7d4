"""Quiet hours: a user's nightly window in which push channels hold non-critical sends.

``{"start": "22:00", "end": "08:00", "timezone": "Asia/Shanghai"}`` (preferences,
``PUT /v1/users/{user}/preferences``): a send that comes due inside the window (in the
user's time zone; a window may run past midnight; start == end is no window) is
held in the retry queue until the window ends — delayed, never dropped, no attempt
used. A ``critical`` notification is sent at once. The inbox is never held.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes)


def quiet_until(quiet: Mapping[str, str] | None, now_ms: int) -> int | None:
    """When the quiet window around ``now_ms`` ends (ms), or None outside it."""
    if not quiet:
        return None
    try:
        zone = _zone(str(quiet["timezone"]))
        start, end = _minutes(str(quiet["start"])), _minutes(str(quiet["end"]))
    except (KeyError, ValueError):
        return None
    if zone is None:
        return None
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz=zone)
    minute = local.hour * 60 + local.minute
    if start == end:
        return None
    if start < end:
        inside = start <= minute < end
    else:  # past midnight: 22:00-08:00
        inside = minute >= start or minute < end
    if not inside:
        return None
    tomorrow = start > end and minute >= start
    day = local.date() + dt.timedelta(days=1) if tomorrow else local.date()
    ends = dt.datetime.combine(day, dt.time(end // 60, end % 60), tzinfo=zone)
    return int(ends.timestamp() * 1000)
