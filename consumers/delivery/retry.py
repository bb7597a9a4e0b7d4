"""The retry schedule: how long to wait before each further delivery attempt.

HERALD_RETRY_SCHEDULE lists the waits, e.g. ``"1s,5s,30s,2m,10m"`` (the
default, roughly exponential): after attempt 1 fails, attempt 2 follows about
1 s later; after attempt 6 (the fifth retry) fails, the delivery is ``failed``
for good. So ``max_attempts == len(delays) + 1``.

Each wait is jittered by ±``jitter`` (default 20 %) so deliveries that failed
together do not retry together; a provider's Retry-After is honoured as a
minimum (capped at one day). Everything here is pure: pass a seeded
``random.Random`` and the answers are reproducible; the retry *state* (attempt
count, due time) is kept in Redis by the delivery worker, not here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from herald.consumers.channels.base import MAX_RETRY_AFTER_S
from herald.streams.errors import SettingsError
from herald.streams.settings import Settings, parse_duration

DEFAULT_JITTER = 0.2


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"1s,5s,30s,2m,10m"`` → (1.0, 5.0, 30.0, 120.0, 600.0); ValueError otherwise.

    An empty schedule means no retries (one attempt only); waits must be > 0.
    """
    delays = tuple(parse_duration(part) for part in text.split(",") if part.strip())
    if any(delay <= 0 for delay in delays):
        raise ValueError(f"every wait must be positive: {text!r}")
    return delays


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Waits between attempts, with proportional jitter (see the module doc)."""

    delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrySchedule:
        """From HERALD_RETRY_SCHEDULE; raises SettingsError naming it."""
        try:
            return cls(parse_schedule(settings.retry_schedule))
        except ValueError as exc:
            raise SettingsError(
                f"HERALD_RETRY_SCHEDULE={settings.retry_schedule!r} is invalid: {exc}"
            ) from exc

    @property
    def max_attempts(self) -> int:
        """Attempts in all, the first included."""
        return len(self.delays) + 1

    def has_next(self, attempt: int) -> bool:
        """Whether another attempt follows a failed attempt number ``attempt`` (from 1)."""
        return attempt < self.max_attempts

    def delay(
        self,
        attempt: int,
        rng: random.Random | None = None,
        retry_after_s: float | None = None,
    ) -> float | None:
        """Seconds to wait after failed attempt ``attempt`` (from 1); None when none is left.

        The wait is ``delays[attempt-1]`` times U[1-jitter, 1+jitter], and at least
        ``retry_after_s`` (capped at MAX_RETRY_AFTER_S) when the provider said so.
        """
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        if not self.has_next(attempt):
            return None
        base = self.delays[attempt - 1]
        uniform = rng.uniform if rng is not None else random.uniform
        wait = base * uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after_s is not None:
            wait = max(wait, min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S))
        return wait

    def next_attempt_at(
        self,
        attempt: int,
        now_ms: int,
        rng: random.Random | None = None,
        retry_after_s: float | None = None,
    ) -> int | None:
        """Due time (ms) of the attempt after failed attempt ``attempt``; None if final."""
        wait = self.delay(attempt, rng, retry_after_s)
        return None if wait is None else now_ms + round(wait * 1000)

    def bounds(self, attempt: int) -> tuple[float, float] | None:
        """The (shortest, longest) jittered wait after ``attempt``, ignoring Retry-After."""
        if attempt < 1 or not self.has_next(attempt):
            return None
        base = self.delays[attempt - 1]
        return base * (1 - self.jitter), base * (1 + self.jitter)
