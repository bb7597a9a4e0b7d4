"""Delivery: notifications out over webhook, SMS, WeChat and email.

- ``worker.py``: the channel roles (one consumer group per channel) and the retry poller;
- ``dispatch.py``: decide, pace, send, record — and the crash guarantees;
- ``jobs.py``: one notification on one channel, and its idempotency keys;
- ``policy.py``: preferences, recipients, disabled endpoints, expiry (pure);
- ``state.py``: projected profiles and preferences, read after the projector caught up;
- ``ratelimit.py``: per-channel and per-user send limits shared by every worker;
- ``retry.py``: the waits between attempts; ``retry_queue.py``: jobs waiting in Redis
  for a retry or a rate-limit slot;
- ``projection.py``: preferences, profile and per-notification status, projected from
  the outcome events (so replay rebuilds them);
- ``queries.py``: per-notification delivery status, preferences and profile reads.
"""
