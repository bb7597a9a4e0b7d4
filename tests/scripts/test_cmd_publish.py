"""``herald publish``: works, and bad input gives a clear message and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from herald.streams.settings import Settings


def herald(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        REDIS_URL=settings.redis_url or "",
        HERALD_PREFIX=settings.prefix,
        HERALD_PARTITIONS=str(settings.partitions),
        HERALD_LOG_FORMAT="json",
    )
    return subprocess.run(
        [sys.executable, "-m", "herald.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_publish_prints_id_and_position(settings: Settings) -> None:
    done = herald(
        settings,
        "publish",
        "--user",
        "alice",
        "--title",
        "订单已发货",
        "--data",
        '{"order": 1}',
        "--idempotency-key",
        "ship-1",
    )
    assert done.returncode == 0, done.stderr
    out = orjson.loads(done.stdout)
    assert out["duplicate"] is False and "-" in out["position"]
    again = herald(settings, "publish", "--user", "alice", "--title", "订单已发货", "--data",
                   '{"order": 1}', "--idempotency-key", "ship-1")
    assert orjson.loads(again.stdout)["id"] == out["id"]
    other = herald(
        settings, "publish", "--user", "alice", "--title", "x", "--idempotency-key", "ship-1"
    )
    assert other.returncode != 0 and "another payload" in other.stderr, other.stderr
    assert out["id"] in other.stderr and "Traceback" not in other.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "a\tb", "--title", "t"], "user"),
        (["--user", "a", "--title", ""], "title"),
        (["--user", "a", "--title", "t", "--data", "{oops"], "--data"),
        (["--user", "a", "--title", "t", "--data", "[1]"], "JSON object"),
        (["--user", "a", "--title", "t", "--delay", "soon"], "--delay"),
        (["--user", "a", "--title", "t", "--at", "tomorrow"], "--at"),
        (["--user", "a", "--title", "t", "--cancel-key", "k"], "--cancel-key"),
        (["--user", "a", "--title", "t", "--channels", "fax"], "channel"),
    ],
)
def test_bad_input_is_a_clear_error(settings: Settings, args: list[str], message: str) -> None:
    done = herald(settings, "publish", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_help_and_unknown_command(settings: Settings) -> None:
    assert herald(settings, "--help").returncode == 0
    assert "--idempotency-key" in herald(settings, "publish", "--help").stdout
    assert herald(settings, "frobnicate").returncode == 2


def test_unicode_user_ids_through_the_cli(settings: Settings) -> None:
    user = "张三 / ops"
    done = herald(settings, "publish", "--user", user, "--title", "你好")
    assert done.returncode == 0, done.stderr
    published = orjson.loads(done.stdout)
    token = subprocess.run([sys.executable, "-m", "herald.cli", "token", user],
                           env={**os.environ, "HERALD_TOKEN_SECRET": "s" * 32},
                           capture_output=True, text=True, timeout=60)
    assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
    listed = herald(settings, "inbox", user, "--json")
    assert listed.returncode == 0, listed.stderr
    assert published["id"] in listed.stdout or orjson.loads(listed.stdout)["items"] == []
    bad = herald(settings, "publish", "--user", "a\tb", "--title", "x")
    assert bad.returncode != 0 and "user" in bad.stderr and "Traceback" not in bad.stderr
