"""Retention: Redis holds a bounded window of the log; snapshots and archive hold the rest.

- ``image.py`` — a partition's projection as records (dump) and back (load);
- ``snapshots.py`` — snapshot files in archive storage (versioned, checksummed);
- ``snapshotter.py`` — taking a snapshot: fold the log into a scratch namespace;
- ``role.py`` — the ``retention`` role: snapshot when due, archive and trim below;
- ``as_of.py`` — one user's inbox as it was at a position or a time.

The archive itself (segments, the archiver, the reader of segments + stream) is the
log's, in streams/archive/.
"""
