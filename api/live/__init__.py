"""Live push: Server-Sent Events, WebSocket and long-poll with gapless resume.

How a change reaches a browser: the projector applies an event and, in the same
atomic step, SPUBLISHes "user u changed at position x" on its partition's channel
(consumers/projection/applier.py). Each API process subscribes the channels of partitions
it has clients for (subscriber.py, hub.py); the partition's feed reads the log
from its cursor to x (journal.py), asks the projection what the touched items
look like now (changes.py) and queues the messages (messages.py) on every
connection of the user (connection.py), which the SSE (sse.py) or WebSocket
(ws.py) handler writes. A reconnecting client names the last position it saw and
first gets what it missed from the log, then live messages (session.py).

Why the log and not only the projection: the projection keeps current state,
not what changed when; only the log can say "item 7 was read at x", so resume
reads the log and the projection together. Why per-partition subscriptions: the
projector signals per partition, and ignoring a signal for a user who is not
here costs under a microsecond (scripts/bench_live.py measures it).
"""
