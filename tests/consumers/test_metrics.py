"""The workers' metrics: the latency histogram counts what prometheus-client's own
Histogram would, and the Redis-side gauges are read for the groups a process runs."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from herald.consumers.metrics import (
    LATENCY_BUCKETS,
    SAMPLE,
    ConsumerMetrics,
    LatencyHistogram,
)
from herald.streams.events import NotificationScheduled
from herald.streams.producer import Producer
from herald.streams.settings import Settings

NOW_MS = 1_800_000_000_000


@given(st.lists(st.integers(min_value=-5_000, max_value=120_000), max_size=SAMPLE))
def test_latency_buckets_equal_prometheus_histogram(ages_ms: list[int]) -> None:
    ours = LatencyHistogram()
    ours.observe_positions([f"{NOW_MS - age}-{i}" for i, age in enumerate(ages_ms)], NOW_MS)
    registry = CollectorRegistry()
    model = Histogram("herald_publish_to_projected_seconds", "x", buckets=LATENCY_BUCKETS,
                      registry=registry)
    for age in ages_ms:
        model.observe(max(age, 0) / 1000)
    [theirs] = list(registry.collect())
    [mine] = list(ours.collect())
    expected = {(s.name, s.labels.get("le")): s.value for s in theirs.samples
                if not s.name.endswith("_created")}
    got = {(s.name, s.labels.get("le")): s.value for s in mine.samples}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-6, key


@given(st.integers(min_value=SAMPLE + 1, max_value=5000), st.integers(0, 50_000))
def test_a_big_batch_is_sampled_and_counted_exactly(n: int, spread_ms: int) -> None:
    """A catch-up batch: every entry counted once (weights), ages from a sample."""
    ours = LatencyHistogram()
    positions = [f"{NOW_MS - spread_ms * (n - i) // n}-{i}" for i in range(n)]
    ours.observe_positions(positions, NOW_MS)
    assert sum(ours.counts) == n
    assert 0 <= ours.sum_ms <= spread_ms * n
    [family] = list(ours.collect())
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    assert count == n


async def test_gauges_are_read_for_the_groups_this_process_runs(settings: Settings,
                                                                 redis: Any) -> None:
    producer = Producer(redis, settings)
    await producer.start()
    await producer.publish(producer.envelope("ola", NotificationScheduled(
        title="later", deliver_at=NOW_MS)))
    await redis.xgroup_create(producer.keys.stream(producer.partition("ola")), "projector",
                              id="0", mkstream=True)
    metrics = ConsumerMetrics()
    await metrics.sample(redis, settings)
    assert b"herald_consumer_lag{" not in metrics.render()  # no group tracked here yet
    metrics.track("projector")
    metrics.track("scheduler")
    await metrics.sample(redis, settings)
    text = metrics.render().decode()
    part = producer.partition("ola")
    assert f'herald_consumer_lag{{group="projector",partition="{part}"}} 1.0' in text
    assert f'herald_schedule_depth{{partition="{part}"}} 0.0' in text  # not projected yet
    assert "herald_publish_to_projected_seconds_count 0.0" in text
    assert generate_latest(metrics.registry) == metrics.render()
