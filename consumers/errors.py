"""Errors of the consumer room; all derive from :class:`streams.errors.HeraldError`.

Redis errors are translated where Redis is called: a missing consumer group becomes
:class:`GroupMissingError`, a lease lost mid-batch :class:`LeaseLostError`.
"""

from __future__ import annotations

from herald.streams.errors import HeraldError

# Redis error replies that say "try again later", not "this entry is bad".
TRANSIENT_REPLIES = (
    "BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK",
    "OOM", "NOREPLICAS", "UNBLOCKED",
)


class ConsumerError(HeraldError):
    """Base of the consumer room's errors.

    ``excused``: the batch failed for a reason outside its entries (the store, another
    consumer's pending entries, a projector that is behind): the re-read that follows
    counts as a delivery in Redis but not toward ``HERALD_MAX_DELIVERIES``, so a
    healthy entry is never dead-lettered for waiting (consumers/group/runtime.py).
    """

    excused = False


class GroupMissingError(ConsumerError):
    """Raised when a stream or its consumer group vanished while consuming (NOGROUP).

    Never repaired silently: recreating the group at ``$`` would skip entries and
    recreating it at ``0`` would redeliver everything to delivery channels. An
    operator decides (restore the data, or restart the worker, which creates missing
    groups at the start of the log).
    """

    def __init__(self, stream: str, group: str) -> None:
        super().__init__(
            f"consumer group {group!r} of stream {stream!r} does not exist any more "
            "(deleted, or Redis lost its data); refusing to recreate it silently. Restore "
            "the data, or restart `herald worker` to create it at the start of the log "
            "(delivery groups would then redeliver from the start)"
        )
        self.stream = stream
        self.group = group


class LeaseLostError(ConsumerError):
    """Raised by a handler when its fenced write found another owner of the partition.

    The runtime drops the partition without acking; the new owner redelivers.
    """

    def __init__(self, partition: int, group: str) -> None:
        super().__init__(f"lease of partition {partition} for group {group!r} was lost")
        self.partition = partition
        self.group = group


class ProjectionError(ConsumerError):
    """Raised by a projection function for an event it cannot apply (dead-lettered)."""


class PendingGapError(ConsumerError):
    """Raised by an ordered handler when an older entry is pending with another consumer.

    The runtime then claims the group's pending entries of the partition and re-reads
    them in order before anything newer (nothing of the batch was written).
    """

    excused = True

    def __init__(self, partition: int, position: str, message: str = "") -> None:
        super().__init__(message or f"partition {partition}: entry {position} is pending "
                                    "elsewhere")
        self.partition = partition
        self.position = position


class LogRegressedError(PendingGapError):
    """Raised when a batch read from the log is no longer in it: the server lost writes
    after the read (it restarted from an older state: a power loss under
    ``appendfsync everysec``, a failover to a replica that lagged). Nothing of the batch
    was written; the runtime drops what it read and re-reads from the group, as after
    a gap, so the projection never holds an entry the log does not."""

    def __init__(self, partition: int, position: str) -> None:
        super().__init__(partition, position,
                         f"partition {partition}: entry {position} was read from the log "
                         "but is no longer in it (the server lost writes); re-reading")


class UnknownRoleError(ConsumerError):
    """Raised when ``herald worker --roles`` names a role nobody registered."""


class ReplayError(ConsumerError):
    """Raised when a replay cannot proceed (another replay running, switch contention)."""


class RetentionError(ConsumerError):
    """Raised when a snapshot cannot be written or loaded (a record of another kind, a
    snapshot of a projection layout this version does not read, a partition count that
    differs): the message says what and which file."""


class DeadLetterError(ConsumerError):
    """Raised by ``herald dlq`` for an unknown group or a letter that does not exist."""


def is_transient(exc: BaseException) -> bool:
    """True for a Redis error reply that a retry after a back-off may cure."""
    message = str(exc)
    return message.startswith(TRANSIENT_REPLIES)
