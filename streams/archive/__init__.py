"""The log's cold storage: archive segments of trimmed stream entries, and the file
format they share with projection snapshots.

``container`` is the file format, ``storage`` where files live (a local folder or an
S3-compatible bucket), ``segments`` the archive segments of one partition with the
archiver that writes them and trims the stream, and the reader that reads the whole
log back from segments and stream.
"""

from herald.streams.archive.archiver import Archiver, ArchiveReport, TrimBound, safe_trim_point
from herald.streams.archive.container import Container, pack_container, unpack_container
from herald.streams.archive.errors import ArchiveError
from herald.streams.archive.reader import LogReader
from herald.streams.archive.segments import Segment, SegmentStore
from herald.streams.archive.storage import Storage, open_storage

__all__ = [
    "ArchiveError",
    "ArchiveReport",
    "Archiver",
    "Container",
    "LogReader",
    "Segment",
    "SegmentStore",
    "Storage",
    "TrimBound",
    "open_storage",
    "pack_container",
    "safe_trim_point",
    "unpack_container",
]
