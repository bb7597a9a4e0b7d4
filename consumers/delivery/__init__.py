"""Delivery: notifications out over webhook, SMS, WeChat and email.

- ``worker.py``: the channel roles (one consumer group per channel) and the retry poller;
- ``dispatch.py``: decide, pace, send, record — and the crash guarantees;
- ``jobs.py``: one notification on one channel, and its idempotency keys;
- ``policy.py``: preferences, recipients, disabled endpoints, expiry (pure);
- ``state.py``: projected profiles and preferences, read after the projector caught up;
- ``retry_queue.py``: jobs waiting in Redis for a retry or a rate-limit slot;
- ``status.py``: per-notification delivery status, preferences and profile queries.

State users see (preferences, profile, status) is projected from the outcome
events by consumers/delivery/projection.py, so replay rebuilds it.
"""
