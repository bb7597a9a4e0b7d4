"""``herald secrets rotate|status`` through the real CLI: every data key re-wrapped by the
newest master key, after which the old key can go and everything still opens."""

from __future__ import annotations

import base64
import os

import orjson

from herald.streams.connection import connect
from herald.streams.events import ProfileChanged
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from tests.conftest import log_entries
from tests.scripts.test_operator_commands import Cli

OLD = "k1:" + base64.b64encode(os.urandom(32)).decode()
NEW = "k2:" + base64.b64encode(os.urandom(32)).decode()
USERS = ["ana", "bo", "cy"]


async def test_rotate_rewraps_every_data_key_then_the_old_key_can_go(settings: Settings) -> None:
    old = settings.replace(secret_keys=OLD)
    redis = connect(old)
    try:
        producer = Producer(redis, old)
        for user in USERS:
            await producer.publish(producer.envelope(user, ProfileChanged(
                webhook_url="https://hooks.example.com/h", webhook_secret="whsec_c2VjcmV0")))
    finally:
        await redis.aclose()

    cli = Cli(old)
    assert cli("secrets", "status") == 0, cli.err
    assert orjson.loads(cli.out) == {"current": "k1", "wrapped_by": {"k1": 3}}

    both = Cli(settings.replace(secret_keys=f"{NEW},{OLD}"))
    assert both("secrets", "rotate") == 0, both.err
    assert orjson.loads(both.out) == {"current": "k2", "rewrapped": 3, "wrapped_by": {"k2": 3}}
    assert both("secrets", "rotate") == 0 and orjson.loads(both.out)["rewrapped"] == 0

    new_only = settings.replace(secret_keys=NEW)
    redis = connect(new_only)
    try:
        opened = [env for p in range(new_only.partitions)
                  for env in await log_entries(redis, new_only, p)]
    finally:
        await redis.aclose()
    assert sorted(env.user for env in opened) == USERS
    assert {env.payload.webhook_secret for env in opened} == {"whsec_c2VjcmV0"}


def test_rotate_without_master_keys_is_a_usage_error(settings: Settings) -> None:
    cli = Cli(settings)
    assert cli("secrets", "rotate") == 2
    assert "HERALD_SECRET_KEYS is empty" in cli.err and "Traceback" not in cli.err
