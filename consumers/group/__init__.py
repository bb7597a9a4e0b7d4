"""The consumer-group runtime: what every group (projector, delivery channels) shares.

- ``runtime.py`` — one consumer of one group: the loop, recovery, settling;
- ``handler.py`` — the interface a group's handler implements;
- ``intake.py`` — what to handle next: pending entries first, then new ones, read ahead;
- ``reads.py`` — XREADGROUP / XAUTOCLAIM / XPENDING with Redis errors translated;
- ``lease.py`` — partition leases and balancing between consumers;
- ``dead_letters.py`` — settling a batch (acks and dead letters in one fenced step),
  and the dead-letter tools.
"""
