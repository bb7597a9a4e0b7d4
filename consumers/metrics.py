"""Prometheus metrics of the worker roles (projector, delivery channels, scheduler,
retention), one set per process.

The roles count as they go (counters, and the publish → projected histogram);
gauges that describe Redis — lag and pending per partition and group, schedule
depth — are read from Redis when the metrics are scraped (:meth:`ConsumerMetrics.sample`,
one status read: consumers/overview.py). A process shows them on ``/metrics``:
``herald worker`` on ``HERALD_METRICS_PORT`` (api/metrics_server.py), ``herald run``
on the API's ``/metrics``. Each worker process has its own numbers (one port each);
sum or max them in Prometheus.

Series (names as scraped):

- ``herald_events_applied_total{group}`` — entries a group handled here (applied by
  the projector, dispatched by a delivery channel), not counting dead letters;
- ``herald_dead_lettered_total{group}`` — entries this process sent to the dead letters;
- ``herald_consumer_lag{group,partition}`` — entries of the partition not yet delivered
  to the group; ``herald_consumer_pending{group,partition}`` — delivered, not acked;
- ``herald_deliveries_total{channel,outcome}`` — ``sent``, ``failed`` (final),
  ``skipped``, ``expired``; ``herald_delivery_retries_total{channel}`` — failed sends
  that will be tried again; ``herald_rate_limit_waits_total{channel}`` — sends a rate
  limit deferred to a later slot;
- ``herald_schedule_depth{partition}`` — scheduled notifications not yet fired;
  ``herald_schedule_fired_total{outcome}``;
- ``herald_snapshots_written_total``, ``herald_log_archived_entries_total``;
- ``herald_publish_to_projected_seconds`` — histogram of the time from an entry's
  append (its stream id) to the projector's reply that applied it.

The histogram is counted on the projector's hot path, so it is a small collector of
plain counters (one bisect per entry: ~0.7 µs with the position parsed) exposed as a
histogram family, not prometheus-client's locked ``Histogram.observe`` (1.9-3.1 µs
per entry, measured side by side); a catch-up batch is counted from a sample of at
most :data:`SAMPLE` of its entries, each weighted for its share (the count stays exact).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric

from herald.consumers.overview import collect
from herald.streams.settings import Settings

SAMPLE = 64  # most entries of one batch the latency histogram looks at (see below)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SCHEDULER = "scheduler"


class LatencyHistogram:
    """``herald_publish_to_projected_seconds``: buckets counted in plain ints."""

    name = "herald_publish_to_projected_seconds"

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds_ms = [b * 1000 for b in bounds]
        self.bounds = list(bounds)
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.sum_ms = 0.0

    def observe_positions(self, positions: Sequence[str], now_ms: float) -> None:
        """One observation per entry: now minus the ms part of its stream id.

        A batch of more than :data:`SAMPLE` entries (a catch-up) is counted from an even
        sample of them, each standing for its share of the batch, so the count is exact
        and the cost bounded; a live batch is counted entry by entry.
        """
        n = len(positions)
        if not n:
            return
        step = -(-n // SAMPLE)  # ceil: 1 for a live batch
        chosen = positions[::step] if step > 1 else positions
        last_weight = n - step * (len(chosen) - 1)
        bounds, counts, total = self.bounds_ms, self.counts, 0.0
        for i, position in enumerate(chosen):
            age = now_ms - int(position[: position.index("-")])
            if age < 0:
                age = 0.0
            weight = step if i < len(chosen) - 1 else last_weight
            counts[bisect.bisect_left(bounds, age)] += weight
            total += age * weight
        self.sum_ms += total

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        yield HistogramMetricFamily(
            self.name, "Time from an entry's append to the projector applying it",
            buckets=buckets, sum_value=self.sum_ms / 1000)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class ConsumerMetrics:
    """The roles' collectors in one registry (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.groups: set[str] = set()
        self.applied = Counter("herald_events_applied", "Entries a consumer group handled in "
                               "this process (dead letters not counted)", ["group"], registry=reg)
        self.dead_lettered = Counter("herald_dead_lettered", "Entries this process moved to "
                                     "the dead letters", ["group"], registry=reg)
        self.lag = Gauge("herald_consumer_lag", "Entries of the partition's log not yet "
                         "delivered to the group", ["group", "partition"], registry=reg)
        self.pending = Gauge("herald_consumer_pending", "Entries delivered to the group and "
                             "not yet acked", ["group", "partition"], registry=reg)
        self.deliveries = Counter("herald_deliveries", "Delivery outcomes: sent, failed "
                                  "(final), skipped, expired", ["channel", "outcome"],
                                  registry=reg)
        self.retries = Counter("herald_delivery_retries", "Failed sends that will be tried "
                               "again", ["channel"], registry=reg)
        self.rate_limit_waits = Counter("herald_rate_limit_waits", "Sends a rate limit "
                                        "deferred to a later slot", ["channel"], registry=reg)
        self.schedule_depth = Gauge("herald_schedule_depth", "Scheduled notifications not "
                                    "yet fired", ["partition"], registry=reg)
        self.fired = Counter("herald_schedule_fired", "Scheduled entries the scheduler "
                             "handled, by outcome", ["outcome"], registry=reg)
        self.snapshots = Counter("herald_snapshots_written", "Snapshots written",
                                 registry=reg)
        self.archived = Counter("herald_log_archived_entries", "Log entries copied to archive "
                                "segments and trimmed", registry=reg)
        self.latency = LatencyHistogram()
        reg.register(self.latency)  # type: ignore[arg-type]

    def track(self, group: str) -> None:
        """A role of ``group`` runs here: sample its lag (and the schedule depth for the
        scheduler) at scrape time."""
        self.groups.add(group)

    def count(self, group: str, handled: int, dead: int) -> None:
        if handled - dead:
            self.applied.labels(group).inc(handled - dead)
        if dead:
            self.dead_lettered.labels(group).inc(dead)

    def projected(self, positions: Sequence[str]) -> None:
        self.latency.observe_positions(positions, time.time() * 1000)

    async def sample(self, redis: Any, settings: Settings) -> None:
        """Set the gauges that describe Redis (one status read; nothing when no role of
        this process needs them)."""
        if not self.groups:
            return
        doc = await collect(redis, settings)
        for row in doc["partitions"]:
            partition = str(row["partition"])
            for group in row["groups"]:
                if group["name"] not in self.groups:
                    continue
                if group["lag"] is not None:
                    self.lag.labels(group["name"], partition).set(group["lag"])
                self.pending.labels(group["name"], partition).set(group["pending"])
            if SCHEDULER in self.groups:
                self.schedule_depth.labels(partition).set(row["scheduled"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


_process: list[ConsumerMetrics] = []


def consumer_metrics() -> ConsumerMetrics:
    """This process's metrics (made on first use; the roles of a process share them)."""
    if not _process:
        _process.append(ConsumerMetrics())
    return _process[0]
