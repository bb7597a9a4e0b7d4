"""Prometheus series of live push, copied from the hub's numbers (``Hub.stats``).

:meth:`LiveMetrics.sync` sets the gauges and moves the counters by what changed since
the last sync. The API syncs before every scrape, and every :data:`SYNC_S` while
several API processes share one multiprocess registry (api/metrics.py), so a scrape
that one process answers sums every process's connections.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from herald.api.live.hub import Hub

SYNC_S = 1.0
GAUGES = {
    "connections": ("herald_live_connections", "Open live connections (SSE + WS)"),
    "users": ("herald_live_users", "Users with at least one live connection"),
    "waiters": ("herald_live_waiters", "Long-poll requests waiting"),
    "partitions_subscribed": ("herald_live_partitions_subscribed",
                              "Partition signal channels subscribed"),
}
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


class LiveMetrics:
    """Gauges and counters of one hub, in the app's registry."""

    def __init__(self, hub: Hub, registry: CollectorRegistry) -> None:
        self.hub = hub
        self.gauges = {key: Gauge(name, text, registry=registry, multiprocess_mode="livesum")
                       for key, (name, text) in GAUGES.items()}
        self.counters = {key: Counter(name, text, registry=registry)
                         for key, (name, text) in COUNTERS.items()}
        self.seen = dict.fromkeys(COUNTERS, 0)

    def sync(self) -> None:
        stats = self.hub.stats()
        for key, gauge in self.gauges.items():
            value = stats[key]
            gauge.set(len(value) if isinstance(value, list) else value)
        for key, counter in self.counters.items():
            now = int(stats[key])
            if now > self.seen[key]:
                counter.inc(now - self.seen[key])
            self.seen[key] = now

    def unregister(self, registry: CollectorRegistry) -> None:
        for metric in (*self.gauges.values(), *self.counters.values()):
            registry.unregister(metric)
