"""The retry schedule: parsing, attempt counting, jitter bounds, determinism."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.consumers.channels.base import MAX_RETRY_AFTER_S
from herald.consumers.delivery.retry import RetrySchedule, parse_schedule
from herald.streams.errors import SettingsError
from herald.streams.settings import Settings


def test_default_schedule_from_settings(settings: Settings) -> None:
    schedule = RetrySchedule.from_settings(settings)
    assert schedule.delays == (1.0, 5.0, 30.0, 120.0, 600.0)
    assert schedule.max_attempts == 6
    assert [schedule.has_next(n) for n in range(1, 7)] == [True] * 5 + [False]


def test_parsing() -> None:
    assert parse_schedule("250ms, 2s,1m") == (0.25, 2.0, 60.0)
    assert parse_schedule("") == ()
    assert RetrySchedule(parse_schedule("")).max_attempts == 1
    for bad in ("soon", "0s", "1s,,x"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_bad_setting_names_the_variable(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="HERALD_RETRY_SCHEDULE"):
        RetrySchedule.from_settings(settings.replace(retry_schedule="1s,later"))


def test_seeded_rng_is_deterministic_and_jitter_varies() -> None:
    schedule = RetrySchedule()
    first = [schedule.delay(n, random.Random(7)) for n in range(1, 6)]
    again = [schedule.delay(n, random.Random(7)) for n in range(1, 6)]
    assert first == again
    rng = random.Random(1)
    spread = {schedule.delay(3, rng) for _ in range(20)}
    assert len(spread) == 20  # jittered, not one fixed value


@given(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=2**32))
def test_waits_stay_within_the_jitter_band(attempt: int, seed: int) -> None:
    schedule = RetrySchedule()
    low, high = schedule.bounds(attempt)  # type: ignore[misc]
    wait = schedule.delay(attempt, random.Random(seed))
    assert wait is not None and low <= wait <= high
    assert low == schedule.delays[attempt - 1] * 0.8


def test_waits_grow_along_the_schedule() -> None:
    schedule = RetrySchedule()
    rng = random.Random(3)
    waits = [schedule.delay(n, rng) for n in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(waits))  # type: ignore[operator]


def test_no_wait_after_the_last_attempt() -> None:
    schedule = RetrySchedule()
    assert schedule.delay(6) is None
    assert schedule.next_attempt_at(6, now_ms=1_000) is None
    assert schedule.bounds(6) is None
    with pytest.raises(ValueError):
        schedule.delay(0)


def test_retry_after_is_a_floor_with_a_cap() -> None:
    schedule = RetrySchedule(jitter=0.0)
    assert schedule.delay(1, retry_after_s=30.0) == 30.0
    assert schedule.delay(5, retry_after_s=30.0) == 600.0  # schedule already longer
    assert schedule.delay(1, retry_after_s=10 * MAX_RETRY_AFTER_S) == MAX_RETRY_AFTER_S
    assert schedule.next_attempt_at(2, now_ms=1_000, retry_after_s=7.5) == 8_500
    assert schedule.next_attempt_at(2, now_ms=1_000) == 6_000


def test_jitter_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        RetrySchedule(jitter=1.0)
