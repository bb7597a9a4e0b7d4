"""bench_cluster's helpers (the benchmark itself takes minutes): the CPU meter, the
percentile, the lost-and-duplicates tally (scripts/benchcluster.py) and the argument
checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from herald.bench_cluster import parse_args
from herald.benchcluster import cpu_percent, percentile, tally


def test_cpu_percent_tells_a_busy_process_from_an_idle_one() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        assert cpu_percent(idle.pid, 0.5) < 10
        assert cpu_percent(busy.pid, 0.5) > 30
    finally:
        for proc in (idle, busy):
            proc.kill()
            proc.wait()


def test_percentile_and_tally() -> None:
    assert percentile([], 99) is None
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    # "b" acknowledged but not in any inbox; "c" twice in the log; "d" twice in an inbox
    assert tally(["a", "b"], ["a", "c", "c", "d"], ["a", "c", "d", "d"]) == (1, 2)
    assert tally([], [], []) == (0, 0)


def test_arguments() -> None:
    args = parse_args([])
    assert args.settings == ["leader", "replica", "fsync"]
    assert 0 < args.kill_after < args.failover_seconds
    with pytest.raises(SystemExit):
        parse_args(["--settings", "quorum"])
    with pytest.raises(SystemExit):
        parse_args(["--kill-after", "20", "--failover-seconds", "10"])
