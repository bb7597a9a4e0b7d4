"""Errors of the log room; every Herald error derives from :class:`HeraldError`."""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""


class SettingsError(HeraldError):
    """Raised at start when an environment variable is unknown or invalid."""


class ValidationError(HeraldError):
    """Raised when an event or request field breaks a rule; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CodecError(HeraldError):
    """Raised when bytes cannot be decoded into an event (or an event encoded).

    ``reason`` is a short machine-readable word: ``malformed``, ``unknown_type``,
    ``unknown_version``, ``invalid``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EntryRejectedError(HeraldError):
    """Raised by :func:`streams.entries.EntryReader.read` when a log entry breaks a rule
    of the protocol (PROTOCOL.md); ``reason`` is the rule's word: ``malformed``,
    ``unknown_type``, ``unknown_version``, ``invalid``, ``oversized`` or
    ``wrong_partition``. Consumers dead-letter the entry with ``str(error)``, which
    starts with the reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class IdempotencyConflictError(HeraldError):
    """Raised by ``Producer.publish`` when the idempotency key was used within the
    dedupe window for another payload (its digest differs): nothing was appended;
    ``first_id`` and ``position`` name the first append under the key."""

    def __init__(self, key: str, first_id: str, position: str) -> None:
        super().__init__(f"idempotency_key {key!r} was used for another payload "
                         f"(first event {first_id}); nothing was appended")
        self.key = key
        self.first_id = first_id
        self.position = position


class PartitionMismatchError(HeraldError):
    """Raised at start when HERALD_PARTITIONS differs from the count recorded in Redis."""


class ServerStartError(HeraldError):
    """Raised when no Redis-compatible server can be found, started or reached."""


class NoServerError(ServerStartError):
    """Raised when a command needs a running server and none is there: ``REDIS_URL`` is
    unset and the data folder has no live ``server.url`` (no ``herald run`` on it)."""


class RedisUnavailableError(HeraldError):
    """Raised when Redis cannot be reached after the connection's retries."""


class NotDurableError(RedisUnavailableError):
    """Raised when a publish was applied but not copied or synced as
    ``HERALD_PUBLISH_DURABILITY`` asks within ``HERALD_PUBLISH_WAIT``: not
    acknowledged (publish again with the same idempotency key)."""


class ListenError(HeraldError):
    """Raised at start when the HTTP listener cannot bind (port in use, no permission)."""
