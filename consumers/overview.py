"""``herald status``: per partition, the log, each group's owner, lag and pending, the
projector's checkpoint, and the dead letters — read in two pipelines.

Meaning of the numbers (Redis's own words): ``length`` entries in the stream;
``lag`` entries no consumer of the group has been given yet; ``pending`` entries
given but not acked; ``owner`` the consumer holding the group's lease on the
partition (None: nobody, e.g. no worker running) and ``lease_ms`` what is left of it;
``checkpoint`` the last position applied to the live projection; ``retention`` the
newest snapshot, where the stream was trimmed to, and the group that holds trimming
back, if any (consumers/retention/role.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from herald.consumers.projection.applier import GROUP
from herald.consumers.projection.views import ns_of
from herald.streams.connection import text
from herald.streams.keys import Keys
from herald.streams.settings import Settings


def _text(value: Any) -> str | None:
    return None if value is None else text(value)


def _info(row: dict[Any, Any]) -> dict[str, Any]:
    """XINFO GROUPS row → name, pending, lag, consumers, last delivered."""
    get = {(_text(k) or ""): v for k, v in row.items()}.get
    lag = get("lag")
    return {
        "name": _text(get("name")),
        "pending": int(get("pending") or 0),
        "lag": None if lag is None else int(lag),
        "consumers": int(get("consumers") or 0),
        "last_delivered": _text(get("last-delivered-id")),
    }


async def collect(redis: Any, settings: Settings,
                  partitions: Sequence[int] | None = None) -> dict[str, Any]:
    """The status document (JSON-ready)."""
    keys = Keys(settings.prefix)
    parts = list(range(settings.partitions) if partitions is None else partitions)
    async with redis.pipeline(transaction=False) as pipe:
        for p in parts:
            pipe.xlen(keys.stream(p))
            pipe.xinfo_groups(keys.stream(p))
            pipe.xlen(keys.dead_letters(p))
            pipe.get(keys.partition_view(p))
            pipe.xrevrange(keys.stream(p), count=1)
            pipe.hgetall(keys.archive_state(p))
        first = await pipe.execute(raise_on_error=False)
    rows: list[dict[str, Any]] = []
    for i, p in enumerate(parts):
        length, groups, dead, view, last, kept = first[6 * i : 6 * i + 6]
        state = {text(k): text(v) for k, v in kept.items()} if isinstance(kept, dict) else {}
        rows.append({
            "partition": p,
            "length": int(length) if isinstance(length, int) else 0,
            "last_position": _text(last[0][0]) if isinstance(last, list) and last else None,
            "ns": ns_of(view),
            "dead_letters": int(dead) if isinstance(dead, int) else 0,
            "groups": [_info(g) for g in groups] if isinstance(groups, list) else [],
            "retention": {"snapshot": state.get("snapshot"),
                          "snapshot_at": int(state["snapshot_at"]) if "snapshot_at" in state
                          else None,
                          "trimmed_to": state.get("trimmed_to"),
                          "blocked_by": state.get("blocked_by"),
                          "blocked_at": state.get("blocked_at")},
        })
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            p = row["partition"]
            pipe.get(keys.checkpoint(p, row["ns"], GROUP))
            pipe.zcard(keys.schedule(p, row["ns"]))
            pipe.zcard(keys.digests_due(p, row["ns"]))
            for group in row["groups"]:
                pipe.get(keys.lease(group["name"], p))
                pipe.pttl(keys.lease(group["name"], p))
        second = iter(await pipe.execute())
    for row in rows:
        row["checkpoint"] = _text(next(second))
        row["scheduled"] = int(next(second))
        row["digests_open"] = int(next(second))
        for group in row["groups"]:
            group["owner"] = _text(next(second))
            group["lease_ms"] = max(0, int(next(second)))
    projector = [g for r in rows for g in r["groups"] if g["name"] == GROUP]
    return {
        "prefix": settings.prefix,
        "partitions": rows,
        "totals": {
            "length": sum(r["length"] for r in rows),
            "dead_letters": sum(r["dead_letters"] for r in rows),
            "scheduled": sum(r["scheduled"] for r in rows),
            "digests_open": sum(r["digests_open"] for r in rows),
            "projector_lag": sum(g["lag"] or 0 for g in projector),
            "projector_pending": sum(g["pending"] for g in projector),
            "projector_unowned": sum(1 for g in projector if g["owner"] is None),
            "trim_blocked": sum(1 for r in rows if r["retention"]["blocked_by"]),
        },
        "view": _text(await redis.get(keys.view_pointer())),
    }
