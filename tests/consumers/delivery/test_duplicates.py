"""A notification XADDed twice with one event id (a plain XADD retried) is sent once:
the delivery group follows the projector's record of applied event ids."""

from __future__ import annotations

import asyncio

from herald.consumers.group.dead_letters import DeadLetters
from herald.streams import codec
from herald.streams.events import NotificationCreated
from herald.streams.keys import Keys
from tests.consumers.delivery.conftest import Stack, WebhookReceiver


async def test_a_copy_of_an_event_id_is_sent_once_and_dead_lettered(
        stack: Stack, webhook_receiver: WebhookReceiver) -> None:
    await stack.webhook_profile("dora", webhook_receiver)
    env = stack.producer.envelope("dora", NotificationCreated(title="twice?",
                                                              channels=("webhook",)))
    raw = codec.encode(env)  # sealing is the producer's: a foreign producer writes clear
    p = stack.producer.partition("dora")
    stream = Keys(stack.settings.prefix).stream(p)
    first = (await stack.redis.xadd(stream, {b"e": raw})).decode()
    copy = (await stack.redis.xadd(stream, {b"e": raw})).decode()
    stack.start_channel("webhook")
    doc = await stack.wait_state(env.id)
    assert doc["channels"]["webhook"]["state"] == "sent"
    dlq = DeadLetters(stack.redis, stack.settings)
    letters = []
    for _ in range(200):  # the webhook group settles its batch after the send
        letters = await dlq.letters([p])
        if {(x.group, x.position) for x in letters} == {("projector", copy), ("webhook", copy)}:
            break
        await asyncio.sleep(0.05)
    assert {(x.group, x.position) for x in letters} == {("projector", copy), ("webhook", copy)}
    assert all(x.reason.startswith(f"duplicate: its event id was already applied at {first}")
               for x in letters)
    assert len(webhook_receiver.received) == 1
    assert doc["channels"]["webhook"]["attempts"] == 1
