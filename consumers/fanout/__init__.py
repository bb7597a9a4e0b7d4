"""Topic fan-out: one publish to a topic becomes one notification per subscriber.

- ``jobs.py``: the fan-out job record (what to send, where the fan-out stands) and
  its lease;
- ``worker.py``: the ``fanout`` role, which walks a job's subscribers partition by
  partition in bounded batches and appends their notifications.
"""
