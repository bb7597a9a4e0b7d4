"""Prometheus metrics of one API process (prometheus-client, one registry per app).

Request counters and latency histograms are labelled by method, route template
(never the raw path, so ids do not explode cardinality; unknown routes are
``unmatched``) and status. Projector lag and dead letters per partition are
gauges refreshed from Redis when ``/metrics`` is scraped. With several API
worker processes each keeps its own registry: scrape each, or sum.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import exposition as _exposition
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from herald.api.lag import Reading

CONTENT_TYPE = _exposition.CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's collectors; ``observe_request`` is called once per request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        self.requests = Counter(
            "herald_http_requests", "HTTP requests answered, by route and status",
            ["method", "route", "status"], registry=reg,
        )
        self.latency = Histogram(
            "herald_http_request_duration_seconds", "Time to answer an HTTP request",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=reg,
        )
        self.in_flight = Gauge(
            "herald_http_requests_in_flight", "HTTP requests being handled", registry=reg
        )
        self.published = Counter(
            "herald_events_published", "Events appended to the log by this API process",
            ["type"], registry=reg,
        )
        self.rate_limited = Counter(
            "herald_rate_limited_requests", "Requests refused by a rate limit (429)",
            ["scope"], registry=reg,
        )
        self.projector_lag = Gauge(
            "herald_projector_lag_seconds",
            "Age of the oldest log entry the projector has not applied", ["partition"],
            registry=reg,
        )
        self.dead_letters = Gauge(
            "herald_dead_letters", "Entries in the partition's dead-letter stream",
            ["partition"], registry=reg,
        )
        self.retained = Gauge(
            "herald_log_retained_entries",
            "Entries of the partition's log still in Redis (retention archives the rest)",
            ["partition"], registry=reg,
        )
        self.trim_blocked = Gauge(
            "herald_retention_trim_blocked",
            "1 while a consumer group holds the partition's trimming back (it has not read "
            "or acked past the newest snapshot)", ["partition", "group"], registry=reg,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # label lookups cost more than the update; do them once
            children = (self.requests.labels(method, route, str(status)),
                        self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def update_partitions(self, reading: Reading) -> None:
        for partition, lag in reading.lag_s.items():
            self.projector_lag.labels(str(partition)).set(lag)
        for partition, count in reading.dead_letters.items():
            self.dead_letters.labels(str(partition)).set(count)
        for partition, count in reading.retained.items():
            self.retained.labels(str(partition)).set(count)
        self.trim_blocked.clear()
        for partition, group in reading.trim_blocked.items():
            self.trim_blocked.labels(str(partition), group).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
