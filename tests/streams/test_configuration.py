"""The effective configuration: every secret masked, each value's source named."""

from __future__ import annotations

import orjson

from herald.streams.configuration import MASK, document, redact_url, rows
from herald.streams.settings import Settings

SECRETS = {
    "HERALD_API_KEYS": "key-one-0123456789,key-two-0123456789",
    "HERALD_TOKEN_SECRET": "t" * 40,
    "HERALD_SMTP_PASSWORD": "smtp-pass-xyz",
    "HERALD_SMS_AUTH_TOKEN": "sms-token-xyz",
    "HERALD_WECHAT_SECRET": "wechat-secret-xyz",
    "HERALD_SECRET_KEYS": "k1:" + "A" * 43 + "=",
    "REDIS_URL": "redis://herald:redis-pass-xyz@127.0.0.1:6379/0",
}


def test_no_secret_appears_in_the_document() -> None:
    env = {**SECRETS, "HERALD_PARTITIONS": "16"}
    text = orjson.dumps(document(Settings.from_env(env), env)).decode()
    for name, value in SECRETS.items():
        for part in value.replace("@", ",").split(","):
            if "xyz" in part or "0123456789" in part or len(part) >= 40:
                assert part not in text, name
    by_name = {row.name: row for row in rows(Settings.from_env(env), env)}
    assert by_name["HERALD_API_KEYS"].value == f"{MASK} (2 keys)"
    assert by_name["REDIS_URL"].value == f"redis://herald:{MASK}@127.0.0.1:6379/0"
    assert by_name["HERALD_SMTP_PASSWORD"].value == MASK


def test_sources() -> None:
    env = {"HERALD_PARTITIONS": "16", "HERALD_PORT": "tcp://10.0.0.7:8080"}
    settings = Settings.from_env(env).replace(token_secret="s" * 40)
    by_name = {row.name: row for row in rows(settings, env, ["HERALD_TOKEN_SECRET"])}
    assert (by_name["HERALD_PARTITIONS"].value, by_name["HERALD_PARTITIONS"].source) == (
        "16", "environment")
    assert (by_name["HERALD_PORT"].value, by_name["HERALD_PORT"].source) == ("8080", "default")
    assert by_name["HERALD_TOKEN_SECRET"].source == "credentials file"
    assert by_name["HERALD_INBOX_MAX"].source == "default"
    assert by_name["HERALD_LEASE_TTL"].value == "10s"


def test_redact_url() -> None:
    assert (redact_url("rediss://:pw@h:6380/0?ssl_cert_reqs=none")
            == f"rediss://:{MASK}@h:6380/0?ssl_cert_reqs=none")
    assert (redact_url("redis://h:6379/0?password=pw&db=1")
            == f"redis://h:6379/0?password={MASK}&db=1")
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
