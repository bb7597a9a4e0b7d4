"""Dead letters: entries a group could not process, kept with the reason and the bytes.

Per partition one stream ``Keys.dead_letters(p)``; each letter has fields ``group``,
``position`` (of the original entry), ``reason`` and ``e`` (the original bytes,
untouched). A letter is written in the same atomic step as the batch's ack
(consumers/group/lua/runtime_settle.lua, fenced by the lease), so an entry is never both
lost and acked, nor acked without its letter. The stream is capped at
:data:`DLQ_MAX_LEN` letters per partition (approximate trim, oldest first).

``retry`` offers letters to their group's handler again (``Handler.retry``); a
letter that now succeeds is deleted, one that fails again stays with its new reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.consumers.group.handler import (
    ENTRY_PROBLEM,
    DeadLetter,
    Entry,
    Handler,
    Outcome,
)
from herald.streams.connection import text
from herald.streams.keys import Keys
from herald.streams.log import get_logger
from herald.streams.scripts import register
from herald.streams.settings import Settings

log = get_logger(__name__)

DLQ_MAX_LEN = 100_000  # letters kept per partition stream (approximate trim, oldest first)


@dataclass(frozen=True, slots=True)
class Letter:
    """One dead letter; ``id`` is its id in the dead-letter stream."""

    partition: int
    id: str
    group: str
    position: str
    reason: str
    raw: bytes

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "id": self.id, "group": self.group,
                "position": self.position, "reason": self.reason, "bytes": len(self.raw)}


class DeadLetters:
    """Settling batches (ack + letters) and the operator's list/retry/drop."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._settle = register(redis, __file__, "runtime_settle")

    async def settle(
        self, partition: int, group: str, consumer: str, entries: Sequence[Entry],
        outcomes: Sequence[Outcome],
    ) -> bool:
        """Ack every entry, writing letters for the dead ones; False when fenced out."""
        dead: list[Any] = []
        for entry, outcome in zip(entries, outcomes, strict=True):
            if outcome is not None:
                dead.extend((entry.position, outcome.reason, entry.letter_bytes))
        k = self.keys
        reply = await self._settle(
            keys=[k.stream(partition), k.dead_letters(partition), k.lease(group, partition)],
            args=[consumer, group, DLQ_MAX_LEN, len(dead) // 3, *dead,
                  *(e.position for e in entries)],
        )
        return int(reply[0]) >= 0

    async def letters(
        self, partitions: Sequence[int], *, group: str | None = None, limit: int = 100
    ) -> list[Letter]:
        """Oldest letters first, at most ``limit`` in all."""
        out: list[Letter] = []
        for p in partitions:
            if len(out) >= limit:
                break
            rows = await self.redis.xrange(self.keys.dead_letters(p), count=limit - len(out))
            for letter_id, fields in rows:
                letter = Letter(
                    partition=p, id=text(letter_id), group=text(fields.get(b"group", b"")),
                    position=text(fields.get(b"position", b"")),
                    reason=text(fields.get(b"reason", b"")), raw=fields.get(b"e", b""),
                )
                if group is None or letter.group == group:
                    out.append(letter)
        return out

    async def drop(self, letters: Sequence[Letter]) -> int:
        """Delete letters; how many existed."""
        dropped = 0
        for letter in letters:
            dropped += int(await self.redis.xdel(self.keys.dead_letters(letter.partition),
                                                 letter.id))
        return dropped

    async def retry(self, letters: Sequence[Letter], handler: Handler) -> list[Outcome]:
        """Offer each letter to ``handler.retry``; delete the ones that succeed.

        A letter that fails again is replaced by one with the new reason (same
        position and bytes), so the stream shows the latest reason.
        """
        outcomes: list[Outcome] = []
        for letter in letters:
            entry = Entry(letter.position, letter.raw)
            if letter.reason.startswith(ENTRY_PROBLEM):  # its bytes are its packed fields:
                outcome: Outcome = DeadLetter(letter.reason)  # the entry cannot change
            else:
                outcome = (await handler.retry(letter.partition, [entry]))[0]
            key = self.keys.dead_letters(letter.partition)
            async with self.redis.pipeline(transaction=True) as pipe:
                if isinstance(outcome, DeadLetter):
                    pipe.xadd(key, {"group": letter.group, "position": letter.position,
                                    "reason": outcome.reason, "e": letter.raw},
                              maxlen=DLQ_MAX_LEN, approximate=True)
                pipe.xdel(key, letter.id)
                await pipe.execute()
            log.info("dead_letter_retried", entry_id=letter.position, group=letter.group,
                     ok=outcome is None)
            outcomes.append(outcome)
        return outcomes
