"""Reading a partition's log between two positions, for resume and fan-out.

The log is the only record of *what* changed (the projection holds only the
current state), so a client that was away learns which items changed from the
log and what they look like now from the projection. This module only reads
(XRANGE); it never joins a consumer group and never writes.

Guarantees: entries come in log order, each at most once; an entry that breaks a
rule of the protocol (streams/entries.py, with the reader given; else one that
cannot be decoded) is skipped: the projector dead-letters it, so it changed nothing.
:meth:`Journal.read` reads at most ``limit`` entries and says whether it stopped
short, so a caller far behind can answer with a reset instead of reading on.
:meth:`Journal.intact_after` tells whether the stream still holds every entry
after a position (nothing trimmed or deleted there), so a resume never reads
across a hole. Redis errors propagate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.exceptions

from herald.streams import codec, positions
from herald.streams.connection import text
from herald.streams.entries import EntryReader
from herald.streams.errors import CodecError, EntryRejectedError
from herald.streams.events import Envelope
from herald.streams.keys import Keys

CHUNK = 500  # entries per XRANGE


@dataclass(frozen=True, slots=True)
class Entry:
    position: str
    event: Envelope


@dataclass(frozen=True, slots=True)
class Read:
    """Entries read (decodable ones), the position read up to, and whether more remain."""

    entries: list[Entry]
    last: str
    complete: bool


class Journal:
    """Range reads of partition streams; one per process."""

    def __init__(self, redis: Any, keys: Keys, reader: EntryReader | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.reader = reader

    async def read(self, partition: int, after: str, upto: str, limit: int) -> Read:
        """Entries with ``after < position <= upto``, at most ``limit`` of them.

        ``last`` is the position covered: ``upto`` when complete, else the last
        entry read (callers continue from there or give up).
        """
        key = self.keys.stream(partition)
        out: list[Entry] = []
        cursor = after
        seen = 0
        while seen < limit:
            count = min(CHUNK, limit - seen)
            rows = await self.redis.xrange(key, min=f"({cursor}", max=upto, count=count)
            for raw_id, fields in rows:
                cursor = text(raw_id)
                raw = fields.get(codec.ENTRY_FIELD)
                if raw is None or len(fields) != 1:
                    continue
                try:
                    event = codec.decode(raw) if self.reader is None \
                        else self.reader.read(raw, partition)
                except (CodecError, EntryRejectedError):
                    continue
                out.append(Entry(cursor, event))
            seen += len(rows)
            if len(rows) < count:
                return Read(out, upto, True)
        if cursor == upto:
            return Read(out, upto, True)
        more = await self.redis.xrange(key, min=f"({cursor}", max=upto, count=1)
        return Read(out, upto if not more else cursor, not more)

    async def intact_after(self, partition: int, after: str) -> bool:
        """True unless entries after ``after`` were trimmed (XTRIM) or deleted (XDEL).

        Conservative: a trim that reached past ``after`` counts as a hole even when
        the entries it removed were all older (the caller resets; nothing is lost).
        """
        try:
            info = await self.redis.xinfo_stream(self.keys.stream(partition))
        except redis.exceptions.ResponseError as exc:  # no such key: nothing appended yet
            if "no such key" in str(exc).lower():
                return True
            raise
        fields = {text(k): v for k, v in info.items()}
        since = positions.parse(after)
        deleted = fields.get("max-deleted-entry-id")
        if deleted is not None and positions.parse(text(deleted)) > since:
            return False
        added, length = fields.get("entries-added"), fields.get("length")
        if added is None or length is None or int(added) <= int(length):
            return True  # never trimmed (or a server too old to say)
        first = fields.get("recorded-first-entry-id")
        return first is not None and positions.parse(text(first)) <= since

