"""Publishing routes (service keys only): one notification and a batch.

A request becomes one event: ``notification.created``; ``notification.scheduled``
when ``deliver_at`` or ``delay_seconds`` is given (the scheduler turns it into a
created event when due, unless cancelled first); ``digest.item_added`` when
``digest_key`` is given (the bucket closes at the end of the current window of
``digest_window_seconds``, aligned to the epoch so every item of a window shares
it). 201 with ``id`` and ``position``; an ``idempotency_key`` seen within
``HERALD_DEDUPE_WINDOW`` answers 200 with the first append's id and appends nothing
when the request is the same (its digest: streams/idempotency.py), and 409 with the
first append's ``first_id`` when it differs (a batch item: status 409).

A batch (≤ ``HERALD_MAX_BATCH``) validates each item on its own: invalid items get
a 422 result, the valid ones are appended together (one pipeline), in order per user.

Templates: ``"template": id`` (``template_version``, default the latest) renders the
title, body and per-channel variants from ``data`` in ``locale``, default the user's
(their profile's, as projected now), falling back ``zh-CN`` → ``zh`` → ``default``;
the template's category, channels and priority apply unless the request gives them.
The event records ``{id, version, locale}`` and the rendered text, so every retry and
every replay sends exactly that. An unknown template is 404 (a batch item: 422); data
the template cannot render with is 422 naming the place — at publish, never at send.

Routing: ``channels`` without ``in_app`` keep the notification out of the inbox (an
SMS-only one-time code); ``priority: critical`` skips digesting (a ``digest_key`` is
ignored) and quiet hours and is sent ahead of queued bulk sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from herald.api import routes_delivery, routes_templates
from herald.api.appending import count_published
from herald.api.auth import valid_user
from herald.api.context import PRODUCER, QUERIES, SCHEMAS
from herald.api.errors import NotFound, Unprocessable, conflict, field_error
from herald.api.jsonio import json_response
from herald.api.routes_delivery import DELIVERY_QUERIES
from herald.api.routes_templates import RENDERER, TEMPLATES
from herald.api.routing import Call, Reply, Route
from herald.api.schemas import check
from herald.consumers.templates.definition import template_defaults
from herald.consumers.templates.render import TemplateError
from herald.streams import codec, tenants
from herald.streams.egress import url_refusal
from herald.streams.errors import CodecError, ValidationError
from herald.streams.events import (
    CRITICAL,
    Appended,
    DigestItemAdded,
    Envelope,
    NotificationCreated,
    NotificationScheduled,
    Payload,
)
from herald.streams.idempotency import request_digest
from herald.streams.producer import Producer, now_ms
from herald.streams.settings import Settings
from herald.streams.validation import validate_envelope

SCHEDULED_WAIT_S = 0.5  # at most this (and HERALD_ACTION_WAIT) for a schedule's projection
KINDS = {NotificationCreated: "created", NotificationScheduled: "scheduled",
         DigestItemAdded: "digest"}


def _invalid(path: str, message: str) -> Unprocessable:
    return Unprocessable(f"{path}: {message}", errors=[field_error(path, message)])


def time_ms(text: str, path: str) -> int:
    try:
        moment = datetime.fromisoformat(text.upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise _invalid(path, f"is not a usable date-time: {exc}") from exc


async def rendered_item(app: web.Application, item: dict[str, Any],
                        tenant: str = tenants.DEFAULT) -> dict[str, Any]:
    """``item`` with a template's title, body, variants and defaults filled in (as is
    without ``template``). NotFound for an unknown template or version; Unprocessable
    when the data does not render."""
    if "template" not in item:
        return item
    found = await app[TEMPLATES].get(item["template"], item.get("template_version"))
    if found is None:
        raise NotFound(f"no template {item['template']!r}"
                       + (f" version {item['template_version']}"
                          if "template_version" in item else ""))
    locale = item.get("locale") or await app[DELIVERY_QUERIES].locale(
        tenants.scoped(tenant, valid_user(item["user"], "user")))
    try:
        rendered = app[RENDERER].render(found.definition, locale, item.get("data", {}))
    except TemplateError as exc:
        raise Unprocessable(f"template: {exc}", errors=[field_error("template", str(exc))]) \
            from exc
    return {**template_defaults(found.definition), **item, "title": rendered.title,
            "body": rendered.body, "variants": rendered.variants,
            "template_ref": {"id": found.id, "version": found.version,
                             "locale": rendered.locale}}


def build_payload(item: dict[str, Any], settings: Settings, now: int) -> Payload:
    """The event payload a (schema-valid, template-rendered) notification request stands for."""
    channels = tuple(item.get("channels", ("in_app",)))
    priority = item.get("priority")
    common: dict[str, Any] = {
        "title": item["title"],
        "body": item.get("body", ""),
        "category": item.get("category", "general"),
        "data": item.get("data", {}),
        "channels": channels,
        "recipients": item.get("recipients", {}),
        "priority": priority if priority == CRITICAL else None,
        "inbox": None if "in_app" in channels else False,
        "template": item.get("template_ref"),
        "variants": item.get("variants") or None,
    }
    if "webhook" in common["recipients"]:
        refused = url_refusal(common["recipients"]["webhook"], settings.webhook_allow)
        if refused is not None:
            raise _invalid("recipients.webhook", f"destination refused: the URL {refused}")
    if "expires_at" in item:
        common["expires_at"] = time_ms(item["expires_at"], "expires_at")
    # Combinations of fields are rules of the schema (api/schemas.py), checked before this.
    if "deliver_at" in item or "delay_seconds" in item:
        if "deliver_at" in item:
            due = time_ms(item["deliver_at"], "deliver_at")
        else:
            due = now + round(float(item["delay_seconds"]) * 1000)
        return NotificationScheduled(deliver_at=due, cancel_key=item.get("cancel_key"), **common)
    if "digest_key" in item and priority != CRITICAL:  # a critical one is never digested
        window_ms = int(item.get("digest_window_seconds", settings.digest_window_s) * 1000)
        window_end = (now // window_ms + 1) * window_ms
        return DigestItemAdded(digest_key=item["digest_key"], window_end=window_end, **common)
    return NotificationCreated(**common)


def build_envelope(producer: Producer, item: dict[str, Any], now: int,
                   tenant: str = tenants.DEFAULT) -> Envelope:
    """The envelope of a (schema-valid) request item, for ``item["user"]`` of ``tenant``."""
    payload = build_payload(item, producer.settings, now)
    user = tenants.scoped(tenant, valid_user(item["user"], "user"))
    return producer.envelope(user, payload, idempotency_key=item.get("idempotency_key"),
                             time_ms=now)


def published_body(envelope: Envelope, appended: Appended) -> dict[str, Any]:
    return {"id": appended.id, "position": appended.position, "partition": appended.partition,
            "duplicate": appended.duplicate, "kind": KINDS[type(envelope.payload)]}


def digest_of(item: dict[str, Any]) -> str | None:
    """What a keyed request says (its whole item): a key reused with another is a 409."""
    return request_digest(item) if "idempotency_key" in item else None


async def publish_one(call: Call) -> web.Response:
    producer = call.app[PRODUCER]
    tenant = _tenant(call)
    envelope = build_envelope(producer, await rendered_item(call.app, call.body, tenant),
                              now_ms(), tenant)
    appended = await producer.publish(envelope, digest=digest_of(call.body))
    count_published(call.app, [envelope], [appended])
    if isinstance(envelope.payload, NotificationScheduled):
        # Its status is ``scheduled`` from the answer on: wait (bounded) until the
        # schedule is projected; a projector behind by more answers a little later.
        await call.app[QUERIES].wait_for(appended.partition, appended.position,
                                         min(call.settings.action_wait_s, SCHEDULED_WAIT_S))
    return json_response(published_body(envelope, appended), 200 if appended.duplicate else 201)


def _tenant(call: Call) -> str:
    return call.principal.tenant if call.principal is not None else tenants.DEFAULT


async def _prevalidate(app: web.Application, producer: Producer, schema: dict[str, Any],
                       item: Any, now: int, tenant: str) -> Envelope:
    check(schema, item)
    try:
        item = await rendered_item(app, item, tenant)
    except NotFound as exc:  # per item: a 422 result, not the batch's 404
        raise _invalid("template", exc.detail) from exc
    envelope = build_envelope(producer, item, now, tenant)
    try:
        raw = codec.encode(envelope)
    except CodecError as exc:
        raise _invalid("data", str(exc)) from exc
    validate_envelope(envelope, len(raw), producer.limits)
    return envelope


async def publish_batch(call: Call) -> web.Response:
    producer = call.app[PRODUCER]
    schema = call.app[SCHEMAS]["NotificationRequest"]
    items = call.body["notifications"]
    now = now_ms()
    results: list[dict[str, Any]] = [{} for _ in items]
    envelopes: list[Envelope] = []
    indexes: list[int] = []
    for index, item in enumerate(items):
        try:
            envelopes.append(await _prevalidate(call.app, producer, schema, item, now,
                                                _tenant(call)))
            indexes.append(index)
        except Unprocessable as problem:
            results[index] = {"index": index, "status": 422, "detail": problem.detail,
                              "errors": problem.errors or []}
        except ValidationError as exc:
            results[index] = {"index": index, "status": 422, "detail": str(exc),
                              "errors": [field_error(exc.field, exc.message)]}
    appended = await producer.publish_many(
        envelopes, digests=[digest_of(items[index]) for index in indexes])
    count_published(call.app, envelopes, appended)
    for index, envelope, done in zip(indexes, envelopes, appended, strict=True):
        if done.conflict:
            results[index] = conflict_result(index, done)
            continue
        results[index] = {"index": index, "status": 200 if done.duplicate else 201,
                          **published_body(envelope, done)}
    duplicates = sum(1 for a in appended if a.duplicate and not a.conflict)
    conflicts = sum(1 for a in appended if a.conflict)
    return json_response({"results": results, "created": len(appended) - duplicates - conflicts,
                          "duplicates": duplicates,
                          "failed": len(items) - len(appended) + conflicts})


def conflict_result(index: int, done: Appended) -> dict[str, Any]:
    """A batch item's result for an idempotency key reused with another payload."""
    problem = conflict(done.id, done.position)
    return {"index": index, "status": 409, "detail": problem.detail, "first_id": done.id,
            "errors": [field_error("idempotency_key", "was used for another payload")]}


def routes(settings: Settings) -> list[Route]:
    tag = "publishing"
    errors = (400, 413, 422)
    return [
        Route("POST", "/v1/notifications", publish_one, "publish", "Publish one notification",
              tag, "service", {201: Reply("Appended.", "Published"),
                               200: Reply("Duplicate idempotency_key: the first append.",
                                          "Published")},
              body="NotificationRequest", errors=(*errors, 404, 409),
              description="404: the template (or version) named is not registered. "
                          "409: the idempotency_key was used for another payload."),
        Route("POST", "/v1/notifications/batch", publish_batch, "publish_batch",
              f"Publish up to {settings.max_batch} notifications", tag, "service",
              {200: Reply("Per-item results, in request order.", "BatchResult")},
              body="BatchRequest", errors=errors, batch_body=True,
              description="The body may be up to HERALD_MAX_BATCH_BODY (default 4 MiB)."),
    ]


def setup(app: web.Application) -> None:
    """Templates and the users' locales, for publishes that name a template."""
    routes_delivery.setup(app)
    routes_templates.setup(app)
