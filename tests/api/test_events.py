"""CloudEvents in: one event, a batch, idempotency by source + id, the status by the
CloudEvent, and the refusals (unknown type, no subject, another media type)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from herald.api.cloudevents import BATCH_TYPE, CLOUDEVENT_TYPE, idempotency_key
from tests.api.conftest import ApiClient
from tests.api.test_publish import log_of


def event(**over: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "A234-1234-1234", "source": "https://shop.example/orders",
            "type": "com.herald.notification.created", "subject": "alice",
            "time": "2026-12-01T08:00:00Z", "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "data": {"title": "订单已发货", "body": "on its way", "channels": ["in_app"]}, **over}


async def post(api: ApiClient, body: Any, media: str = CLOUDEVENT_TYPE) -> Any:
    return await api.post("/v1/events", data=orjson.dumps(body),
                          headers={"Content-Type": media})


async def projected(api: ApiClient, path: str) -> Any:
    """``GET path`` once it is not 404 (what it reads is projected), or the 404 after 5 s."""
    for _ in range(100):
        answer = await api.get(path)
        if answer.status != 404:
            return answer
        await asyncio.sleep(0.05)
    return answer


@pytest.mark.usefixtures("projector")
async def test_a_cloudevent_becomes_a_notification_once(api: ApiClient, redis: Any) -> None:
    first = await post(api, event())
    assert first.status == 201, first.body
    assert first.body["kind"] == "created" and first.body["duplicate"] is False
    assert (first.body["source"], first.body["event_id"]) == ("https://shop.example/orders",
                                                              "A234-1234-1234")
    again = await post(api, event(), "application/json")
    assert again.status == 200 and again.body["duplicate"] is True
    assert again.body["id"] == first.body["id"]
    other = await post(api, event(data={"title": "twice?"}), "application/json")
    assert other.status == 409 and other.body["first_id"] == first.body["id"]
    [(_, env)] = await log_of(redis, api.settings, "alice")
    assert env.idempotency_key == idempotency_key("https://shop.example/orders", "A234-1234-1234")
    assert env.time == 1_796_112_000_000  # the CloudEvent's time
    assert env.payload.title == "订单已发货"  # type: ignore[attr-defined]
    # Another source with the same id is another event.
    other = await post(api, event(source="/billing"))
    assert other.status == 201 and other.body["id"] != first.body["id"]
    path = "/v1/notifications/by-event-id?source=https://shop.example/orders&id=A234-1234-1234"
    status = await projected(api, path + "&subject=alice")  # the status is projected
    assert status.status == 200, status.body
    assert status.body["id"] == first.body["id"] and status.body["title"] == "订单已发货"
    everywhere = await projected(api, "/v1/notifications/by-event-id?source=/billing"
                                      "&id=A234-1234-1234")
    assert everywhere.status == 200 and everywhere.body["id"] == other.body["id"]
    missing = await api.get("/v1/notifications/by-event-id?source=/billing&id=nope")
    assert missing.status == 404 and missing.content_type == "application/problem+json"


async def test_a_batch_is_validated_item_by_item(api: ApiClient) -> None:
    answer = await post(api, [event(id="1"), event(id="2", subject="me"),
                              event(id="3", type="order.paid"), event(id="1")], BATCH_TYPE)
    assert answer.status == 200, answer.body
    statuses = [r["status"] for r in answer.body["results"]]
    assert statuses == [201, 422, 422, 200]
    assert (answer.body["created"], answer.body["duplicates"], answer.body["failed"]) == (1, 1, 2)
    unknown = answer.body["results"][2]
    assert unknown["errors"][0]["path"] == "type"
    assert "com.herald.notification.created" in unknown["errors"][0]["message"]


async def test_refusals_name_the_problem(api: ApiClient) -> None:
    unknown = await post(api, event(type="order.paid"))
    assert unknown.status == 422
    assert "com.herald.notification.created" in unknown.body["detail"]  # the known types
    no_subject = {k: v for k, v in event().items() if k != "subject"}
    answer = await post(api, no_subject)
    assert answer.status == 422 and answer.body["errors"][0]["path"] == "subject"
    too_long = await post(api, event(data={"title": "x" * 201}))
    assert too_long.status == 422 and too_long.body["errors"][0]["path"] == "data.title"
    wrong_media = await post(api, event(), "text/plain")
    assert wrong_media.status == 415 and wrong_media.content_type == "application/problem+json"
    batch_as_one = await post(api, [event()], CLOUDEVENT_TYPE)
    assert batch_as_one.status == 422
    binary = await post(api, {**event(), "data_base64": "aGk="})
    assert binary.status == 422


async def test_answers_match_the_document(api: ApiClient) -> None:
    """Every kind of answer (created, duplicate, batch) fits its documented schema."""
    import jsonschema_rs

    doc = (await api.get("/openapi.json", auth=None)).body
    answers = doc["paths"]["/v1/events"]["post"]["responses"]
    schemas = doc["components"]["schemas"]

    def fits(status: int, body: Any) -> bool:
        ref = answers[str(status)]["content"]["application/json"]["schema"]["$ref"]
        return jsonschema_rs.validator_for(schemas[ref.rsplit("/", 1)[1]]).is_valid(body)

    created, again = await post(api, event(id="x")), await post(api, event(id="x"))
    batch = await post(api, [event(id="y"), event(id="z", subject="me")], BATCH_TYPE)
    assert (created.status, again.status, batch.status) == (201, 200, 200)
    assert fits(201, created.body) and fits(200, again.body) and fits(200, batch.body)


async def test_the_document_lists_every_media_type(api: ApiClient) -> None:
    doc = (await api.get("/openapi.json", auth=None)).body
    content = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", CLOUDEVENT_TYPE, BATCH_TYPE}
    assert "415" in doc["paths"]["/v1/events"]["post"]["responses"]


def test_another_type_joins_without_changing_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema takes its data rules per type: a second type (say, a workflow's
    business event) keeps the notification's rules as they are."""
    from herald.api import cloudevents as ce
    from herald.api.errors import Unprocessable
    from herald.api.schemas import check

    monkeypatch.setitem(ce.TYPES, "com.example.order.paid", ce.EventType(
        "com.example.order.paid", {"type": "object", "required": ["order"]}, "An order paid."))
    schema = ce.cloudevent_schema()
    check(schema, event())  # the notification: as before
    check(schema, event(type="com.example.order.paid", data={"order": 42}))
    with pytest.raises(Unprocessable):
        check(schema, event(type="com.example.order.paid", data={"title": "no order"}))
    with pytest.raises(Unprocessable):
        check(schema, event(data={"order": 42}))  # a notification still needs its title


def test_every_type_has_a_mapping() -> None:
    from herald.api.cloudevents import TYPES
    from herald.api.routes_events import MAPPINGS

    assert set(MAPPINGS) == set(TYPES)
