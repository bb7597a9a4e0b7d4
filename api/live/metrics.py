"""Prometheus collectors for live push, read from the hub when ``/metrics`` is scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from herald.api.live.hub import Hub

COUNTERS = {
    "opened": ("herald_live_connections_opened", "Live connections accepted"),
    "refused": ("herald_live_connections_refused", "Live connections refused by a limit"),
    "slow_closed": ("herald_live_slow_closed", "Live connections closed as too slow"),
    "resets": ("herald_live_resets", "Reset messages sent (client must refetch)"),
    "messages": ("herald_live_messages", "Messages queued to live connections"),
    "signals": ("herald_live_signals", "Change signals received (subscribed partitions)"),
    "signals_ignored": ("herald_live_signals_ignored",
                        "Change signals for users with no connection here"),
    "pubsub_reconnects": ("herald_live_pubsub_reconnects", "Lost pub/sub connections"),
}


class LiveCollector:
    """Gauges (connections, users, waiters, partitions) and counters of one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def describe(self) -> list[Metric]:
        return []  # collected lazily: nothing to describe before the hub runs

    def collect(self) -> Iterator[Metric]:
        stats = self.hub.stats()
        for name, key, text in (
            ("herald_live_connections", "connections", "Open live connections (SSE + WS)"),
            ("herald_live_users", "users", "Users with at least one live connection"),
            ("herald_live_waiters", "waiters", "Long-poll requests waiting"),
        ):
            yield GaugeMetricFamily(name, text, value=stats[key])
        yield GaugeMetricFamily("herald_live_partitions_subscribed",
                                "Partition signal channels subscribed",
                                value=len(stats["partitions_subscribed"]))
        for key, (name, text) in COUNTERS.items():
            yield CounterMetricFamily(name, text, value=stats[key])
