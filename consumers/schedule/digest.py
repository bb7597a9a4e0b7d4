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

Words: the title and body come from a template in the user's locale (the scheduler
passes :func:`build_summary` the one registered as ``digest.<digest key>``, else
``digest``, else :data:`BUILTIN_DIGEST`: English and Chinese). It is rendered with
``count``, ``titles``, ``items`` (``{id, title, body, category, created_at}``),
``digest_key`` and ``window_end`` (ms); a title or body over the limits is cut. The
summary records the template, its version (0: the built-in one) and the locale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.consumers.schedule.projection import field_position, summary_key
from herald.consumers.templates.render import Renderer, TemplateError
from herald.streams import codec
from herald.streams.events import Envelope, NotificationCreated
from herald.streams.ids import new_id
from herald.streams.validation import Limits

MAX_ITEMS = 100
ITEM_BODY_MAX = 300
TITLE_ITEM_MAX = 60  # characters of each item title quoted in the summary's title
DATA_MARGIN = 256  # bytes kept free under the data limit for the envelope around the items
BUILTIN_ID = "digest"
BUILTIN_DIGEST: dict[str, Any] = {
    "default_locale": "en",
    "locales": {
        "default": {
            "title": "{{ count }} {{ plural(count, one='update', other='updates') }}: "
                     "{{ titles|map('cut', 60)|join(', ') }}",
            "body": "• {{ titles|join('\n• ') }}",
        },
        "zh": {"title": "{{ count }} 条更新：{{ titles|map('cut', 60)|join('、') }}",
               "body": "• {{ titles|join('\n• ') }}"},
        "zh-Hant": {"title": "{{ count }} 則更新：{{ titles|map('cut', 60)|join('、') }}",
                    "body": "• {{ titles|join('\n• ') }}"},
    },
}
_RENDERER = Renderer()


@dataclass(frozen=True, slots=True)
class DigestWords:
    """The template a summary is written with: its id, version and definition, and the
    user's locale (None: the template's default)."""

    template_id: str = BUILTIN_ID
    version: int = 0
    definition: dict[str, Any] | None = None
    locale: str | None = None


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


def _words(words: DigestWords, titles: list[str], covered: Sequence[tuple[str, dict[str, Any]]],
           digest_key: str, window_end: int, limits: Limits
           ) -> tuple[str, str, dict[str, Any] | None]:
    """(title, body, template reference) of a summary in the user's locale; the built-in
    words when a registered template fails on these items (a digest is never held back
    by a template: its registration was checked with its example only)."""
    params = {"count": len(covered), "titles": titles, "digest_key": digest_key,
              "window_end": window_end,
              "items": [{"id": item.get("id", ""), "title": str(item.get("t", "")),
                         "body": str(item.get("b", "")), "category": item.get("c", "general"),
                         "created_at": item.get("ts", 0)} for _, item in covered]}
    limit = (limits.max_title, limits.max_body)
    for chosen in (words, DigestWords(locale=words.locale)):
        definition = chosen.definition or BUILTIN_DIGEST
        try:
            done = _RENDERER.render(definition, chosen.locale, params, clip=True, limits=limit)
        except TemplateError:
            continue
        ref = {"id": chosen.template_id if chosen.definition else BUILTIN_ID,
               "version": chosen.version if chosen.definition else 0, "locale": done.locale}
        return done.title, done.body, ref
    return (title_of(titles, len(covered), limits.max_title),
            _cut("\n".join(f"• {t}" for t in titles), limits.max_body), None)


def build_summary(
    partition: int, user: str, digest_key: str, window_end: int,
    items: Sequence[tuple[str, dict[str, Any]]], limits: Limits, now: int,
    words: DigestWords | None = None,
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
    title, body, ref = _words(words or DigestWords(), titles, covered, digest_key, window_end,
                              limits)
    payload = NotificationCreated(
        title=title, body=body,
        category=categories.pop() if len(categories) == 1 else "digest",
        data=data, channels=tuple(channels), notification_id=nid, recipients=recipients,
        digest_of={"key": digest_key, "window_end": window_end,
                   "positions": [field_position(field) for field, _ in covered]},
        inbox=None if "in_app" in channels else False, template=ref,
    )
    envelope = Envelope(
        id=new_id(partition, now), user=user, time=now, payload=payload,
        idempotency_key=summary_key(user, digest_key, window_end, nid),
    )
    return Summary(envelope, [field for field, _ in covered])
