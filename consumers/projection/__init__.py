"""Projections: the log folded into inboxes, read state and every other derived state.

- ``base.py`` — the context and write shape every projection shares;
- ``inbox.py`` — the inbox's projections (the unread count is kept by the apply script);
- ``registry.py`` — which projection applies which event type (joins the rooms' tables);
- ``applier.py`` — a batch of writes + the checkpoint = one atomic Lua step;
- ``projector.py`` — the ``projector`` group's handler;
- ``views.py`` — which namespace each partition's projection lives in (replay switches);
- ``queries.py`` — what the API reads: pages, unread count, items, read-your-writes.
"""
