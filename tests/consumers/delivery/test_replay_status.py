"""Replay rebuilds delivery state identically (expiry included); statuses expire on time."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from herald.consumers.projection.views import Views
from herald.consumers.replay.rebuild import Replay
from herald.consumers.replay.verify import Verifier
from herald.streams import codec
from herald.streams.keys import Keys
from herald.streams.producer import now_ms
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import Reply, WebhookReceiver
from tests.consumers.delivery.conftest import Stack
from tests.consumers.helpers import worker_env

DELIVERY_KINDS = ("status", "prefs", "profile")


async def delivery_snapshot(redis: Any, settings: Settings) -> dict[str, Any]:
    """Every status/prefs/profile key of the live view: suffix → (fields, expire time)."""
    keys = Keys(settings.prefix)
    views = await Views(redis, settings).read(range(settings.partitions))
    out: dict[str, Any] = {}
    for p, ns in views.items():
        async for raw in redis.scan_iter(match=keys.ns_pattern(ns, p), count=1000):
            split = keys.split_ns_key(raw.decode())
            assert split is not None
            rest = split[2]
            if rest.split(":")[0] in DELIVERY_KINDS:
                out[f"{p}:{rest}"] = (await redis.hgetall(raw),
                                      await redis.execute_command("PEXPIRETIME", raw))
    return out


async def test_replay_rebuilds_status_preferences_and_profile_identically(
    stack: Stack, webhook_receiver: WebhookReceiver, redis: Any
) -> None:
    webhook_receiver.script(Reply(500), Reply(200), Reply(400), Reply(410))
    await stack.webhook_profile("ola", webhook_receiver)
    await stack.preferences("ola", {"promo": {"webhook": False}})
    await stack.profile("pia", phone="+8613900000000")
    created = [
        await stack.notify("ola", "retried then sent"),
        await stack.notify("ola", "promo", category="promo"),
        await stack.notify("ola", "stale", expires_at=now_ms() - 1),
        await stack.notify("pia", "no webhook for pia", channels=("webhook", "in_app")),
    ]
    stack.start_channel("webhook")
    for c in created:
        await stack.wait_state(c.id)
    bad = await stack.notify("ola", "rejected")
    assert (await stack.wait_state(bad.id))["channels"]["webhook"]["state"] == "failed"
    gone = await stack.notify("ola", "gone")
    await stack.wait_state(gone.id)
    states = [(await stack.status(c.id))["channels"]["webhook"]["state"]  # type: ignore[index]
              for c in created]
    assert states == ["sent", "skipped", "expired", "skipped"]
    last = await stack.notify("ola", "after 410")
    await stack.wait_state(last.id)
    await stack.projected([await stack.preferences("pia", {"*": {"sms": False}})])

    before = await delivery_snapshot(redis, stack.settings)
    assert sum(1 for k in before if ":status:" in k) == 7
    assert all(expire > 0 for k, (_, expire) in before.items() if ":status:" in k)
    assert (await Verifier(redis, stack.settings).run()).identical
    report = await Replay(redis, stack.settings).run()
    assert report.ns != "v"
    after = await delivery_snapshot(redis, stack.settings)
    assert after == before
    doc = await stack.status(created[0].id)
    assert doc is not None and doc["channels"]["webhook"]["attempts"] == 2


async def test_statuses_expire_at_event_time_plus_the_ttl(
    delivery_settings: Settings, webhook_receiver: WebhookReceiver, redis: Any
) -> None:
    stack = Stack(delivery_settings.replace(status_ttl_s=1.5), redis)
    stack.start_projector()
    try:
        await stack.webhook_profile("quy", webhook_receiver)
        created = await stack.notify("quy", "short-lived status")
        stack.start_channel("webhook")
        await stack.wait_state(created.id)
        keys = Keys(stack.settings.prefix)
        rows = await redis.xrange(keys.stream(created.partition))
        last_time = max(codec.decode(f[b"e"]).time for _, f in rows)
        expire = await redis.execute_command("PEXPIRETIME", keys.status(created.partition,
                                                                        created.id))
        assert expire == last_time + 1500
        await asyncio.sleep(max(0.0, (last_time + 1600 - now_ms()) / 1000))
        after = await stack.status(created.id)
        assert after is not None and set(after["channels"]) == {"in_app"}  # the inbox stays
    finally:
        await stack.close()


async def test_herald_status_notification_shows_the_channels(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    await stack.webhook_profile("ray", webhook_receiver)
    created = await stack.notify("ray", "cli", channels=("in_app", "webhook", "email"))
    stack.start_channel("webhook")
    await stack.wait_state(created.id)
    env = worker_env(stack.settings)
    for extra in (["--json"], []):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "herald.cli", "status", "--notification", created.id, *extra,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        if extra:
            doc = orjson.loads(out)
            assert doc["channels"]["webhook"]["state"] == "sent"
            assert doc["channels"]["email"]["state"] == "pending"
        else:
            text = out.decode()
            assert "webhook  sent" in text and "attempts 1" in text and "email    pending" in text
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "status", "--notification", "0" * 26, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and b"no notification" in err
