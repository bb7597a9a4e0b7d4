"""Topics: subscribe users (services), list and leave one's own topics (users too), and
publish one notification to every subscriber (consumers/fanout/: fan-out on write).

- ``PUT /v1/users/{user}/topics/{topic}`` — service keys: the user follows the topic
  (appends ``topic.subscribed``).
- ``DELETE /v1/users/{user}/topics/{topic}`` — the user (or a service) leaves it.
- ``GET /v1/users/{user}/topics`` — the topics the user follows.
- ``POST /v1/topics/{topic}/notifications`` — service keys: 202 with the fan-out's
  ``id``; the ``fanout`` worker role appends one notification per subscriber of the
  caller's tenant, in bounded, resumable batches. A repeated ``idempotency_key``
  answers the same fan-out (200); with another payload 409.
- ``POST /v1/broadcasts`` — service keys: the same to every user of the caller's tenant
  that Herald knows (``Keys.tenant_users``: who ever had a notification or followed a
  topic), fanned out on write like a topic.
- ``GET /v1/fanouts/{id}`` — service keys: how far a fan-out got.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herald.api.appending import accepted_body, append_and_wait
from herald.api.auth import require_service
from herald.api.context import QUERIES, REDIS
from herald.api.errors import NotFound, conflict
from herald.api.jsonio import json_response
from herald.api.routes_publish import build_payload
from herald.api.routing import USER_PARAM, Call, Param, Reply, Route
from herald.api.schemas import notification_request
from herald.consumers.fanout.jobs import BROADCAST, FanoutJobs, job_id_for
from herald.streams import tenants
from herald.streams.events import NotificationCreated, TopicSubscribed, TopicUnsubscribed
from herald.streams.idempotency import request_digest
from herald.streams.ids import now_ms
from herald.streams.keys import Keys
from herald.streams.settings import Settings

TOPIC_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
TOPIC_PARAM = Param("topic", "path", {"type": "string", "pattern": TOPIC_PATTERN}, True,
                    "The topic: 1-128 of A-Z a-z 0-9 _ . : - (anything else: 422).")
JOB_PARAM = Param("id", "path", {"type": "string", "pattern": r"^[0-9A-Za-z]{1,40}$"}, True,
                  "The fan-out's id.", match=r"[0-9A-Za-z]{1,40}")
_SCHEDULING = ("deliver_at", "delay_seconds", "cancel_key", "digest_key",
               "digest_window_seconds", "user")


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    base = notification_request()
    props = {k: v for k, v in base["properties"].items() if k not in _SCHEDULING}
    return {
        "TopicNotificationRequest": {
            "type": "object", "additionalProperties": False, "required": ["title"],
            "description": "One notification for every subscriber of the topic.",
            "properties": props},
        "Fanout": {"type": "object", "required": ["id", "topic", "sent", "status", "progress"],
                   "properties": {"id": {"type": "string"}, "topic": {"type": "string"},
                                  "sent": {"type": "integer", "minimum": 0},
                                  "status": {"enum": ["fanning_out", "done"]},
                                  "progress": {"type": "number", "minimum": 0, "maximum": 1},
                                  "duplicate": {"type": "boolean"}}},
        "Topics": {"type": "object", "required": ["user", "topics"],
                   "properties": {"user": {"type": "string"},
                                  "topics": {"type": "array", "items": {"type": "string"}}}},
        "Subscription": {"type": "object", "required": ["user", "topic", "subscribed",
                                                        "position"],
                         "properties": {"user": {"type": "string"},
                                        "topic": {"type": "string"},
                                        "subscribed": {"type": "boolean"},
                                        "position": {"type": "string"}}},
    }


def _jobs(call: Call) -> FanoutJobs:
    return FanoutJobs(call.app[REDIS], Keys(call.settings.prefix))


def _tenant(call: Call) -> str:
    return call.principal.tenant if call.principal is not None else tenants.DEFAULT


async def _subscription(call: Call, subscribed: bool) -> web.Response:
    topic = call.path["topic"]
    event = (TopicSubscribed if subscribed else TopicUnsubscribed)(topic=topic)
    appended, projected = await append_and_wait(call.app, call.owner, event)
    if not projected:
        return json_response(accepted_body(appended), 202)
    return json_response({"user": tenants.plain(call.owner), "topic": topic,
                          "subscribed": subscribed, "position": appended.position})


async def subscribe(call: Call) -> web.Response:
    assert call.principal is not None
    require_service(call.principal)
    return await _subscription(call, True)


async def unsubscribe(call: Call) -> web.Response:
    return await _subscription(call, False)


async def list_topics(call: Call) -> web.Response:
    return json_response({"user": tenants.plain(call.owner),
                          "topics": await call.app[QUERIES].topics(call.owner)})


async def publish_topic(call: Call) -> web.Response:
    return await _fan_out(call, call.path["topic"])


async def publish_broadcast(call: Call) -> web.Response:
    return await _fan_out(call, BROADCAST)


async def _fan_out(call: Call, topic: str) -> web.Response:
    body, tenant = call.body, _tenant(call)
    payload = build_payload(body, call.settings, now_ms())
    assert isinstance(payload, NotificationCreated)
    job_id = job_id_for(tenant, topic, body.get("idempotency_key"))
    digest = request_digest([topic, body])
    job, fresh = await _jobs(call).create(job_id, tenant, topic, payload, digest)
    if not fresh and job.digest != digest:
        raise conflict(job.id, "")
    return json_response({**job.doc(call.settings.partitions), "duplicate": not fresh},
                         202 if fresh else 200)


async def fanout_status(call: Call) -> web.Response:
    job = await _jobs(call).get(call.path["id"])
    if job is None or job.tenant != _tenant(call):
        raise NotFound("no fan-out with this id")
    return json_response(job.doc(call.settings.partitions))


def routes(settings: Settings) -> list[Route]:
    tag = "topics"
    base = "/v1/users/{user}/topics"
    accepted = Reply("Logged, not yet projected.", "Accepted")
    sub = {200: Reply("Projected.", "Subscription"), 202: accepted}
    return [
        Route("GET", base, list_topics, "topics_list", "The topics the user follows", tag,
              "user", {200: Reply("Sorted topic names.", "Topics")}, params=(USER_PARAM,),
              errors=(422,)),
        Route("PUT", f"{base}/{{topic}}", subscribe, "topic_subscribe",
              "Subscribe the user to a topic (service keys)", tag, "user", sub,
              params=(USER_PARAM, TOPIC_PARAM), errors=(403, 422)),
        Route("DELETE", f"{base}/{{topic}}", unsubscribe, "topic_unsubscribe",
              "Leave a topic", tag, "user", sub, params=(USER_PARAM, TOPIC_PARAM),
              errors=(422,)),
        Route("POST", "/v1/topics/{topic}/notifications", publish_topic, "topic_publish",
              "Publish one notification to every subscriber of a topic", tag, "service",
              {202: Reply("The fan-out started.", "Fanout"),
               200: Reply("Repeated idempotency_key: the same fan-out.", "Fanout")},
              params=(TOPIC_PARAM,), body="TopicNotificationRequest",
              errors=(400, 409, 413, 422)),
        Route("POST", "/v1/broadcasts", publish_broadcast, "broadcast_publish",
              "Publish one notification to every user of the tenant", tag, "service",
              {202: Reply("The fan-out started.", "Fanout"),
               200: Reply("Repeated idempotency_key: the same fan-out.", "Fanout")},
              body="TopicNotificationRequest", errors=(400, 409, 413, 422),
              description="Every user Herald knows in the caller's tenant (who ever had "
                          "a notification or followed a topic), fanned out like a topic."),
        Route("GET", "/v1/fanouts/{id}", fanout_status, "fanout_status",
              "How far a topic fan-out got", tag, "service",
              {200: Reply("The fan-out.", "Fanout")}, params=(JOB_PARAM,), errors=(404, 422)),
    ]
