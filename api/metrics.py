"""Prometheus metrics of the API (prometheus-client, one registry per app).

Request counters and latency histograms are labelled by method, route template
(never the raw path, so ids do not explode cardinality; unknown routes are
``unmatched``) and status. Projector lag and dead letters per partition are
gauges refreshed from Redis when ``/metrics`` is scraped; other sources refresh
before each scrape too (:meth:`Metrics.before_render`: the live hub's numbers) and
may add their own series (:meth:`Metrics.include`: the worker roles' series when
``herald run`` runs them in the same process).

Several processes (``herald api --workers N``): the parent points
``PROMETHEUS_MULTIPROC_DIR`` at a folder before it starts them, every value lives in
that folder's memory-mapped files, and whichever process answers ``/metrics``
renders the sum over all of them (prometheus-client's multiprocess mode; gauges say
how they combine: live counts add up, per-partition readings take the most recent).
The process-level collectors (CPU, memory, GC) are per process and left out then.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import exposition as _exposition
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from herald.api.lag import Reading

CONTENT_TYPE = _exposition.CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Source(Protocol):
    """Series of another part of the process, rendered after the API's own."""

    def sample(self, redis: Any, settings: Any) -> Awaitable[None]: ...

    def render(self) -> bytes: ...


def multiprocess_dir() -> str | None:
    """The shared folder when several API processes share one registry, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The app's collectors; ``observe_request`` is called once per request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.shared_dir = multiprocess_dir()
        self.sources: list[Source] = []
        self.refreshers: list[Callable[[], None]] = []
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._blocked: set[tuple[str, str]] = set()
        if self.shared_dir is None:  # per-process numbers mean nothing summed
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
            "herald_http_requests_in_flight", "HTTP requests being handled", registry=reg,
            multiprocess_mode="livesum",
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
            registry=reg, multiprocess_mode="mostrecent",
        )
        self.dead_letters = Gauge(
            "herald_dead_letters", "Entries in the partition's dead-letter stream",
            ["partition"], registry=reg, multiprocess_mode="mostrecent",
        )
        self.retained = Gauge(
            "herald_log_retained_entries",
            "Entries of the partition's log still in Redis (retention archives the rest)",
            ["partition"], registry=reg, multiprocess_mode="mostrecent",
        )
        self.trim_blocked = Gauge(
            "herald_retention_trim_blocked",
            "1 while a consumer group holds the partition's trimming back (it has not read "
            "or acked past the newest snapshot)", ["partition", "group"], registry=reg,
            multiprocess_mode="mostrecent",
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
        # Set what is no longer blocked to 0 rather than clearing it: a multiprocess
        # registry keeps a cleared series' last value in its files.
        blocked = {(str(p), group) for p, group in reading.trim_blocked.items()}
        for labels in self._blocked - blocked:
            self.trim_blocked.labels(*labels).set(0)
        for labels in blocked:
            self.trim_blocked.labels(*labels).set(1)
        self._blocked |= blocked

    def include(self, source: Source) -> None:
        """Render ``source``'s series after the API's (sampled first on each scrape)."""
        self.sources.append(source)

    def before_render(self, refresh: Callable[[], None]) -> None:
        """Call ``refresh`` before each scrape (e.g. copy a component's numbers in)."""
        self.refreshers.append(refresh)

    def refresh(self) -> None:
        for refresh in self.refreshers:
            refresh()

    def render(self) -> bytes:
        """The API's series: this process's, or every process's in multiprocess mode."""
        if self.shared_dir is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=self.shared_dir)
        return generate_latest(combined)
