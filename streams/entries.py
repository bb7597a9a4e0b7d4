"""Reading a log entry: every rule an entry must meet before a consumer acts on it.

Herald's producer checks these rules before it appends; an entry XADDed by anything
else (a service in another language, a plain ``XADD``) is checked here, by every
consumer, in the order PROTOCOL.md lists them:

1. ``oversized`` — the entry's bytes exceed ``HERALD_MAX_EVENT_BYTES``;
2. ``malformed`` / ``unknown_version`` / ``unknown_type`` / ``invalid`` — the codec
   (streams/codec.py): not a msgpack map, a missing or mistyped envelope field, an
   unknown wire format, type or version, an unknown or mistyped payload field;
3. ``invalid`` — the event id is not a Herald id (streams/ids.py);
4. ``wrong_partition`` — the event id or the user belongs to another partition than
   the stream the entry is in;
5. ``invalid`` — a field breaks a rule of streams/validation.py (the producer's).

A sixth rule, ``duplicate`` (an event id already applied within the dedupe window),
needs the projection's state and is decided by the projector's script
(consumers/projection/lua/projector_apply.lua).

Failure modes: :class:`EntryRejectedError` naming the rule; nothing else.
"""

from __future__ import annotations

from herald.streams import codec
from herald.streams.errors import CodecError, EntryRejectedError, ValidationError
from herald.streams.events import Envelope
from herald.streams.ids import partition_of
from herald.streams.partitions import partition_for
from herald.streams.settings import Settings
from herald.streams.validation import Limits, check_key, check_user, validate_payload

USER_CACHE_MAX = 200_000  # users whose partition was already checked (memory bound)


class EntryReader:
    """Checks entries of one deployment (its limits and partition count); one per consumer."""

    def __init__(self, settings: Settings) -> None:
        self.limits = Limits.from_settings(settings)
        self.partitions = settings.partitions
        self._users: dict[str, int] = {}

    def read(self, raw: bytes, partition: int) -> Envelope:
        """The event of an entry of ``partition``'s stream; EntryRejectedError otherwise."""
        size = len(raw)
        if size > self.limits.max_event_bytes:
            raise EntryRejectedError(
                "oversized", f"the entry is {size} bytes; the limit is "
                f"{self.limits.max_event_bytes} (HERALD_MAX_EVENT_BYTES)")
        try:
            env = codec.decode(raw)
        except CodecError as exc:
            raise EntryRejectedError(exc.reason, str(exc)) from exc
        try:
            named = partition_of(env.id)
        except ValueError as exc:
            raise EntryRejectedError("invalid", f"event id {env.id!r} is not a Herald id") \
                from exc
        if named != partition:
            raise EntryRejectedError(
                "wrong_partition", f"event id {env.id} names partition {named}, "
                f"the entry is in partition {partition}")
        home = self._home(env.user)
        if home != partition:
            raise EntryRejectedError(
                "wrong_partition", f"user {env.user!r} belongs to partition {home}")
        try:  # validate_envelope's rules; the user and the size are checked above
            if env.idempotency_key is not None:
                check_key(env.idempotency_key, "idempotency_key")
            if env.correlation is not None:
                check_key(env.correlation, "correlation")
            validate_payload(env.payload, self.limits, size, sealed=env.sealed is not None)
        except ValidationError as exc:
            raise EntryRejectedError("invalid", str(exc)) from exc
        return env

    def _home(self, user: str) -> int:
        """The user's partition (EntryRejectedError for an invalid user id)."""
        known = self._users.get(user)
        if known is None:
            try:
                check_user(user)
            except ValidationError as exc:
                raise EntryRejectedError("invalid", str(exc)) from exc
            if len(self._users) >= USER_CACHE_MAX:
                self._users.clear()
            known = self._users[user] = partition_for(user, self.partitions)
        return known
