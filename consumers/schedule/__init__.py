"""Scheduling and digests: the schedule projection, the scheduler role, digest summaries.

- ``projection`` — pure projections of ``notification.scheduled``,
  ``schedule.cancelled`` and ``digest.item_added`` (and the clean-up when a fired
  reminder or a digest summary is projected).
- ``firing`` — due entries → the encoded events the fire script appends.
- ``digest`` — digest items → one summary notification.
- ``scheduler`` — the ``scheduler`` worker role (one active per partition, leased).

The cancel side lives in the log's room: streams/schedule_cancel.py.
"""
