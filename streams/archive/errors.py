"""Errors of the archive (the log's cold storage)."""

from __future__ import annotations

from herald.streams.errors import HeraldError


class ArchiveError(HeraldError):
    """Raised when an archive file or object is missing, unreadable, corrupt, written by
    a newer Herald, or does not hold what the log needs (a range trimmed from the stream
    that no segment covers).

    The message always names the file or object (``name``) and, when one is involved,
    the partition; ``reason`` is the bare cause.
    """

    def __init__(self, name: str, reason: str, *, partition: int | None = None) -> None:
        where = name if partition is None else f"{name} (partition {partition})"
        super().__init__(f"archive {where}: {reason}")
        self.name = name
        self.reason = reason
        self.partition = partition
