"""bench_live's in-process figure: the cost of a signal for users not connected here."""

from __future__ import annotations

from structlog.testing import capture_logs

from herald.bench_live import ignored_signal_cost_us


def test_the_ignored_signal_figure_times_a_well_formed_signal() -> None:
    """It timed the malformed-signal warning (the pre-0.2.0 message shape) instead."""
    with capture_logs() as logs:
        cost = ignored_signal_cost_us()
    assert [e for e in logs if e["event"] == "live_signal_malformed"] == []
    assert cost > 0
