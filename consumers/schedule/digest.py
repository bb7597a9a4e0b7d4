"""Digest summaries: a user's collected items of one window → one notification.

The summary is a ``notification.created`` for the user: one inbox entry whose
``data.digest`` lists the items it covers (``{"key", "window_end", "count",
"items": [{"id", "title", "body", "category", "data", "created_at", "position"}]}``),
delivered on the union of the items' channels. Its notification id is the first
covered item's id and its idempotency key is
:func:`consumers.schedule.projection_schedule.summary_key`, so a summary fired twice
is appended once, and the projection removes exactly the covered items.

Limits: a summary covers at most :data:`MAX_ITEMS` items and as many as fit in the
data limit (bodies cut to :data:`ITEM_BODY_MAX` characters, an oversized item's own
data left out); the rest stay collected and go into the next summary of the same
window, fired on the next poll. Nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.consumers.schedule.projection import field_position, summary_key
from herald.streams import codec
from herald.streams.events import Envelope, NotificationCreated
from herald.streams.ids import new_id
from herald.streams.validation import Limits

MAX_ITEMS = 100
ITEM_BODY_MAX = 300
TITLE_ITEM_MAX = 60  # characters of each item title quoted in the summary's title
DATA_MARGIN = 256  # bytes kept free under the data limit for the envelope around the items


@dataclass(frozen=True, slots=True)
class Summary:
    envelope: Envelope
    fields: list[str]  # the bucket fields it covers


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _entry(field: str, item: dict[str, Any], lean: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.get("id", ""), "title": _cut(str(item.get("t", "")), 200),
        "category": item.get("c", "general"), "created_at": item.get("ts", 0),
        "position": field_position(field),
    }
    if not lean:
        out["body"] = _cut(str(item.get("b", "")), ITEM_BODY_MAX)
        if item.get("d"):
            out["data"] = item["d"]
    return out


def _fits(data: dict[str, Any], budget: int) -> bool:
    return len(codec.pack_value(data)) <= budget


def title_of(titles: Sequence[str], count: int, limit: int) -> str:
    """``"5 updates: A, B, C"`` (cut to ``limit`` characters)."""
    head = f"{count} update{'' if count == 1 else 's'}: "
    quoted = ", ".join(_cut(t, TITLE_ITEM_MAX) for t in titles)
    return _cut(head + quoted, limit)


def build_summary(
    partition: int, user: str, digest_key: str, window_end: int,
    items: Sequence[tuple[str, dict[str, Any]]], limits: Limits, now: int,
) -> Summary | None:
    """The summary of ``items`` (``(field, item)`` in field order), or None if empty."""
    budget = limits.max_data_bytes - DATA_MARGIN
    digest: dict[str, Any] = {"key": digest_key, "window_end": window_end, "count": 0,
                              "items": []}
    data = {"digest": digest}
    covered: list[tuple[str, dict[str, Any]]] = []
    for field, item in items[:MAX_ITEMS]:
        for lean in (False, True):
            digest["items"].append(_entry(field, item, lean))
            digest["count"] = len(digest["items"])
            if _fits(data, budget):
                break
            digest["items"].pop()
        else:
            if covered:
                break
            # Even a lean first item is too big: keep its id and position only.
            digest["items"].append({"id": item.get("id", ""), "title": "…",
                                    "position": field_position(field)})
        covered.append((field, item))
    digest["count"] = len(covered)
    if not covered:
        return None
    first = covered[0][1]
    nid = str(first.get("id", ""))
    channels: list[str] = []
    recipients: dict[str, str] = {}
    for _, item in covered:
        for channel in item.get("ch") or ["in_app"]:
            if channel not in channels:
                channels.append(channel)
        recipients.update(item.get("r") or {})
    categories = {item.get("c", "general") for _, item in covered}
    titles = [str(item.get("t", "")) for _, item in covered]
    payload = NotificationCreated(
        title=title_of(titles, len(covered), limits.max_title),
        body=_cut("\n".join(f"• {t}" for t in titles), limits.max_body),
        category=categories.pop() if len(categories) == 1 else "digest",
        data=data, channels=tuple(channels), notification_id=nid, recipients=recipients,
        digest_of={"key": digest_key, "window_end": window_end,
                   "positions": [field_position(field) for field, _ in covered]},
    )
    envelope = Envelope(
        id=new_id(partition, now), user=user, time=now, payload=payload,
        idempotency_key=summary_key(user, digest_key, window_end, nid),
    )
    return Summary(envelope, [field for field, _ in covered])
