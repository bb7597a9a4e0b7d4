"""``python -m tests.chaos.skewed SECONDS herald-args…``: a Herald command whose clock
is SECONDS off (time-machine moves time.time, datetime and the like in this process
only; the server's clock is untouched)."""

from __future__ import annotations

import sys
import time

import time_machine


def main() -> int:
    skew = float(sys.argv[1])
    with time_machine.travel(time.time() + skew, tick=True):
        from herald.cli import main as herald

        return herald(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
