"""A partition's projection as records, and back: what a snapshot holds.

A record is ``[name, kind, value, expire_at]`` for one key of a namespace: ``name``
relative to the namespace's root (``Keys.ns_root``), ``kind`` one of ``string``,
``hash``, ``zset``, ``set``, ``value`` its content (bytes; a map; ``[[member,
score], …]``; a list of members) and ``expire_at`` the absolute expiry in ms (None:
none). Every projection key is one of these kinds; anything else is refused.

:func:`dump` reads the keys a build recorded in its registry (``Keys.ns_registry``,
no SCAN); keys deleted since are simply absent. :func:`load` writes records into a
namespace, each key replaced whole (DEL, then written, then its expiry), the
checkpoint last — so a load that was interrupted leaves no checkpoint and is done
again, never trusted half-way. Expiries are absolute, so a key that has expired
meanwhile is gone after a load exactly as it is gone live.

Failure modes: :class:`RetentionError` for a key of another kind or a malformed
record; Redis errors propagate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from herald.consumers.errors import RetentionError
from herald.consumers.projection.applier import GROUP
from herald.streams.connection import Batch, text
from herald.streams.keys import Keys

KINDS = ("string", "hash", "zset", "set")
CHUNK = 500  # keys per pipeline
CHECKPOINT = f"ckpt:{GROUP}"  # the checkpoint's name under the namespace root

Record = list[Any]


async def dump(redis: Any, keys: Keys, partition: int, ns: str,
               names: Iterable[str]) -> list[Record]:
    """Records of the keys ``names`` (full names under ``ns``'s root) that exist."""
    root = keys.ns_root(partition, ns) + ":"
    wanted = sorted(name for name in names if name.startswith(root))
    out: list[Record] = []
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        meta = Batch(redis)
        for name in chunk:
            meta.execute_command("TYPE", name)
            meta.execute_command("PEXPIRETIME", name)
        replies = _checked(await meta.execute())
        present = [(name, text(replies[2 * i]), int(replies[2 * i + 1]))
                   for i, name in enumerate(chunk) if text(replies[2 * i]) != "none"]
        values = Batch(redis)
        for name, kind, _ in present:
            if kind not in READS:
                raise RetentionError(f"{name}: a {kind} is not a projection key")
            values.execute_command(*READS[kind], name, *READ_ARGS.get(kind, ()))
        for (name, kind, expire), value in zip(present, _checked(await values.execute()),
                                               strict=True):
            if value is None or value in ([], {}):  # gone between the two round trips
                raise RetentionError(f"{name} vanished while it was read (expired, or the "
                                     "server restarted): snapshot again")
            out.append([name[len(root):], kind, _plain(kind, value),
                        expire if expire > 0 else None])
    return out


READS = {"string": ("GET",), "hash": ("HGETALL",), "zset": ("ZRANGE",), "set": ("SMEMBERS",)}
READ_ARGS = {"zset": ("0", "-1", "WITHSCORES")}


def _checked(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _plain(kind: str, value: Any) -> Any:
    """A value read raw (flat RESP2 arrays) or parsed (a Cluster pipeline) as a record's."""
    if kind == "hash":
        if isinstance(value, dict):
            return value
        return dict(zip(value[0::2], value[1::2], strict=True))
    if kind == "zset":
        if value and isinstance(value[0], tuple | list):
            return [[member, float(score)] for member, score in value]
        return [[member, float(score)] for member, score in zip(value[0::2], value[1::2],
                                                                strict=True)]
    if kind == "set":
        return sorted(value)
    return value


async def load(redis: Any, keys: Keys, partition: int, ns: str, records: Sequence[Record], *,
               registry: str | None = None) -> list[str]:
    """Write ``records`` into ``ns`` (the checkpoint last); the full key names written.

    ``registry``: also add every name to that set (a scratch namespace's registry)."""
    root = keys.ns_root(partition, ns) + ":"
    for record in records:
        if len(record) != 4 or record[2] is None:  # 0.5 wrote these when a dump raced
            raise RetentionError(f"a record without a value ({record[0]!r}): the snapshot "
                                 "was taken while its server restarted; delete it")
    ordered = sorted(records, key=lambda r: r[0] == CHECKPOINT)
    written: list[str] = []
    for start in range(0, len(ordered), CHUNK):
        batch = Batch(redis)
        chunk = [root + _name(record) for record in ordered[start:start + CHUNK]]
        for name, record in zip(chunk, ordered[start:start + CHUNK], strict=True):
            _write(batch, name, record)
        if registry is not None and chunk:
            batch.execute_command("SADD", registry, *chunk)
        _checked(await batch.execute())
        written += chunk
    return written


def _name(record: Record) -> str:
    if not (isinstance(record, list) and len(record) == 4 and isinstance(record[0], str)
            and record[1] in KINDS):
        raise RetentionError(f"malformed snapshot record: {str(record)[:80]}")
    return record[0]


def _write(batch: Batch, name: str, record: Record) -> None:
    _, kind, value, expire = record
    batch.execute_command("DEL", name)
    if kind == "string":
        batch.execute_command("SET", name, value)
    elif kind == "hash" and value:
        batch.execute_command("HSET", name, *(x for pair in value.items() for x in pair))
    elif kind == "zset" and value:
        batch.execute_command("ZADD", name, *(x for member, score in value
                                              for x in (repr(score), member)))
    elif kind == "set" and value:
        batch.execute_command("SADD", name, *value)
    if expire is not None:
        batch.execute_command("PEXPIREAT", name, int(expire))


def of_user(records: Iterable[Record], user: str) -> list[Record]:
    """The records that make up ``user``'s inbox (their sets and state, and the items
    those sets name), for rebuilding one inbox as of a time; the checkpoint and the
    event-id buckets (``Keys.seen``: an entry after the snapshot may repeat an id
    applied before it) kept."""
    mine = {f"{kind}:{user}" for kind in ("inbox", "unread", "read", "archived", "user")}
    chosen, items = [], {}
    for record in records:
        name = record[0]
        if name in mine or name == CHECKPOINT or name == "seen" or name.startswith("seen:"):
            chosen.append(record)
        elif name.startswith("item:"):
            items[name] = record
    members = [m for r in chosen if r[0] == f"inbox:{user}" for m, _ in r[2]]
    for member in members:
        nid = text(member).partition(":")[2]
        found = items.get(f"item:{nid}")
        if found is not None:
            chosen.append(found)
    return chosen
