"""The applier: one batch of projection writes + the checkpoint = one atomic Redis step.

``prepare`` turns a partition's entries into records (decode, check, project — pure
Python); ``Applier.apply`` runs consumers/projection/lua/projector_apply.lua once for the whole
batch. In that one script:

- every record at or below the namespace's checkpoint is skipped (exactly-once
  effect under at-least-once delivery), the others are applied in log order;
- the checkpoint moves to the batch's highest position, including entries that
  were dead-lettered, so a redelivered batch is a no-op;
- in live mode it also settles the batch: writes its dead letters and acks every
  entry (``Prepared.settle``), so the write, the checkpoint and the ack are one step;
- in live mode the script first checks that this consumer still holds the
  partition's lease (fencing: a paused ex-owner cannot write after a takeover), that
  the partition's view pointer still names the namespace the writes were built for
  (``herald replay`` may have switched it: the caller rebuilds and retries), and
  that no older entry above the checkpoint is pending in the group (it was delivered
  to another consumer — a stale blocking read of an ex-owner can receive entries
  after a takeover — and applying past it would lose it: the caller recovers).

The "user changed" signal
-------------------------
After the writes, in the same script (so the state is already queryable when a
subscriber hears it), the script SPUBLISHes (sharded pub/sub, streams/signals.py) on
``Keys.signal_channel(p)`` one message per batch that changed some user's inbox::

    {"users": {"<user id>": "<ms-seq>", ...}}

a JSON object (UTF-8 text) mapping each changed user to the highest position in the
batch that changed them (a no-op event — e.g. reading an already-read item —
changes nobody; a batch that changed nobody publishes nothing). One message per
batch, not per user: under load a batch changes many users, and an SPUBLISH each was a
measurable share of the script. Replay builds publish nothing. Pub/sub is
fire-and-forget: a subscriber that was away resumes from positions
(``InboxQueries.page(after=...)``).

Failure modes: a malformed batch (unknown op) is refused before any write. A
projection op writes nothing it could not write again: a script that failed half
way (only on a sick server) is retried from the same checkpoint and reaches the same
state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from herald.consumers.errors import ProjectionError
from herald.consumers.group.dead_letters import DLQ_MAX_LEN
from herald.consumers.group.handler import DeadLetter, Entry, Outcome
from herald.consumers.projection.base import WAKE
from herald.consumers.projection.registry import Context, project
from herald.streams import codec, positions
from herald.streams.connection import text
from herald.streams.entries import EntryReader
from herald.streams.errors import EntryRejectedError
from herald.streams.idempotency import IdempotencyRecords
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.scripts import Lua
from herald.streams.settings import Settings

GROUP = "projector"

LIVE, BUILD, LATE = "live", "build", "late"


@dataclass(slots=True)
class Prepared:
    """A batch ready for the script: records, one outcome per entry, the target."""

    records: list[list[Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    target: str = ""
    first: str = ""
    settle: bytes | str = ""  # see settlement()
    due: int | None = None  # the earliest WAKE of the batch (consumers/projection/base.py)


@dataclass(frozen=True, slots=True)
class Applied:
    """The script's answer: ``status`` is ``ok``, ``fenced``, ``ns`` (then ``ns`` is the
    namespace now in use), ``gap`` (then ``ns`` is the older pending position) or
    ``lost`` (then ``ns`` is the batch's last position, no longer in the log)."""

    status: str
    applied: int = 0
    skipped: int = 0
    ns: str = ""
    duplicates: tuple[tuple[str, str], ...] = ()  # (position, first position) per duplicate

    def marked(self, entries: Sequence[Entry], outcomes: Sequence[Outcome]) -> list[Outcome]:
        """``outcomes`` with a ``duplicate`` dead letter for each duplicate the script found."""
        out = list(outcomes)
        if self.duplicates:
            index = {e.position: i for i, e in enumerate(entries)}
            for position, first in self.duplicates:
                out[index[position]] = DeadLetter(duplicate_reason(first))
        return out


# The dead letter's reason for a duplicate, around the position that applied its id
# (the script writes it too: it is passed in).
DUPLICATE_HEAD = "duplicate: its event id was already applied at "
DUPLICATE_TAIL = " (within HERALD_DEDUPE_WINDOW of log time)"


def duplicate_reason(first: str) -> str:
    """The dead letter's reason for an entry whose event id was applied at ``first``."""
    return DUPLICATE_HEAD + first + DUPLICATE_TAIL


class Preparer:
    """Read, check and project entries of one partition (pure, no I/O)."""

    def __init__(self, settings: Settings) -> None:
        self.keys = Keys(settings.prefix)
        self.partitions = settings.partitions
        self.status_ttl_ms = int(settings.status_ttl_s * 1000)
        self.reader = EntryReader(settings)

    def prepare(self, partition: int, ns: str, entries: Sequence[Entry], *,
                only_user: str | None = None) -> Prepared:
        """Records for the script and an outcome per entry (dead letters never raise).

        Every entry that passes the rules (streams/entries.py) gets a record, writes
        or not: the script decides duplicates by its event id.
        ``only_user``: other users' entries write nothing (one inbox as of a time)."""
        ctx = Context(partition, ns, self.keys, self.status_ttl_ms)
        out = Prepared(first=entries[0].position if entries else "")
        records, outcomes = out.records, out.outcomes
        read, padded = self.reader.read, positions.padded
        for entry in entries:
            position = entry.position
            out.target = position
            if entry.raw is None:
                outcomes.append(None)
                continue
            try:
                env = read(entry.raw, partition)
                if only_user is not None and env.user != only_user:
                    outcomes.append(None)
                    continue
                writes = project(env, position, ctx)
            except EntryRejectedError as exc:
                outcomes.append(DeadLetter(str(exc)))
                continue
            except ProjectionError as exc:
                outcomes.append(DeadLetter(str(exc)))
                continue
            outcomes.append(None)
            if writes and writes[-1][0] == WAKE:
                due = writes.pop()[1]
                out.due = due if out.due is None else min(out.due, due)
            records.append([position, padded(position), env.user, env.id, *writes])
        return out


class Applier:
    """Runs the apply script; one instance per process and client."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.span_ms = IdempotencyRecords.from_settings(settings).span_ms
        self._script = Lua(__file__, "projector_apply")
        self._prefixes: dict[tuple[int, str], list[str]] = {}

    def prefixes(self, partition: int, ns: str) -> list[str]:
        """Key prefixes the script appends ids and users to (see streams/keys.py)."""
        cached = self._prefixes.get((partition, ns))
        if cached is None:
            k, p = self.keys, partition
            cached = [
                k.item(p, "", ns), k.inbox(p, "", ns), k.inbox_unread(p, "", ns),
                k.inbox_read(p, "", ns), k.inbox_archived(p, "", ns), k.user_state(p, "", ns),
                k.inbox_expiring(p, "", ns), k.inbox_snoozed(p, "", ns), k.inbox_unseen(p, "", ns),
            ]
            self._prefixes[(partition, ns)] = cached
        return cached

    def call_args(
        self, partition: int, ns: str, batch: Prepared, *, mode: str, consumer: str = "",
        track: bool = False,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one script call; ``track`` (build mode): record every key
        written in the namespace's registry (:meth:`Keys.ns_registry`)."""
        k = self.keys
        keys = [k.checkpoint(partition, ns, GROUP), k.lease(GROUP, partition),
                k.partition_view(partition), k.stream(partition), k.dead_letters(partition),
                k.ns_registry(partition, ns), k.seen_last(partition, ns)]
        channel = "" if mode == BUILD else k.signal_channel(partition)
        args: list[Any] = [
            mode, consumer, ns, LIVE_NS, "" if mode == LATE else batch.target,
            self.settings.inbox_max, channel, *self.prefixes(partition, ns)[:6],
            codec.pack_value(batch.records), GROUP,
            positions.padded(batch.first) if batch.first else "",
            batch.settle if mode == LIVE else "", DLQ_MAX_LEN, "1" if track else "",
            k.seen(partition, self.span_ms, "", ns), self.span_ms, DUPLICATE_HEAD,
            DUPLICATE_TAIL, *self.prefixes(partition, ns)[6:],
        ]
        return keys, args

    @staticmethod
    def settlement(entries: Sequence[Entry], outcomes: Sequence[Outcome]) -> bytes:
        """The ``settle`` argument: ack every entry, write a letter for each dead one."""
        dead = [[e.position, o.reason, e.letter_bytes]
                for e, o in zip(entries, outcomes, strict=True) if o is not None]
        return codec.pack_value([[e.position for e in entries], dead])

    @staticmethod
    def parse(reply: Sequence[Any]) -> Applied:
        status = text(reply[0])
        if status == "ok":
            found = [text(x) for x in reply[3]] if len(reply) > 3 else []
            return Applied("ok", int(reply[1]), int(reply[2]),
                           duplicates=tuple(zip(found[0::2], found[1::2], strict=True)))
        if status in ("ns", "gap", "lost"):
            return Applied(status, ns=text(reply[1]))
        return Applied(status)

    async def apply(
        self, partition: int, ns: str, batch: Prepared, *, mode: str, consumer: str = ""
    ) -> Applied:
        """Run the script once for the batch."""
        keys, args = self.call_args(partition, ns, batch, mode=mode, consumer=consumer)
        return self.parse(await self.call(keys, args))

    async def call(self, keys: list[str], args: list[Any]) -> Any:
        """Run one call (from :meth:`call_args`); the raw reply, for :meth:`parse`."""
        return await self._script(self.redis, keys, args)

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        """Queue one call (from :meth:`call_args`) on a pipeline or a
        :class:`streams.connection.Batch`; pass its reply (errors as values) to
        :meth:`resend`, then parse it."""
        self._script.queue(pipe, keys, args)

    async def load(self) -> None:
        """Load the script on the server (queued calls expect it there)."""
        await self._script.load(self.redis)

    async def resend(self, reply: Any, keys: list[str], args: list[Any]) -> Any:
        """A queued call's reply; when it was NOSCRIPT (nothing ran: the server restarted
        or flushed its scripts), the reply of the same call run again after loading."""
        if isinstance(reply, NoScriptError):
            return await self.call(keys, args)
        return reply


