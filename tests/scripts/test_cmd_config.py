"""``herald config``: every setting with its source, nothing secret in clear — also what
the data folder's development credentials fill in; it needs no server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.scripts.test_server_commands import base_env

HERALD = str(Path(sys.executable).with_name("herald"))


def config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HERALD, "config", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_sources_and_masking(tmp_path: Path) -> None:
    key, secret = "hk_devkey_0123456789", "s3cr3t-" + "x" * 40
    (tmp_path / "credentials.json").write_bytes(
        orjson.dumps({"api_key": key, "token_secret": secret}))
    env = base_env(HERALD_DATA_DIR=str(tmp_path), HERALD_PARTITIONS="16",
                   HERALD_SMTP_PASSWORD="mail-pass-9", REDIS_URL="redis://u:redis-pass-9@h:1/0")
    done = config(env, "--json")
    assert done.returncode == 0, done.stderr
    for leaked in (key, secret, "mail-pass-9", "redis-pass-9"):
        assert leaked not in done.stdout + done.stderr
    doc = orjson.loads(done.stdout)
    rows = {row["name"]: row for row in doc["settings"]}
    assert rows["HERALD_API_KEYS"] == {"name": "HERALD_API_KEYS", "value": "**** (1 key)",
                                       "source": "credentials file"}
    assert rows["HERALD_TOKEN_SECRET"]["source"] == "credentials file"
    assert (rows["HERALD_PARTITIONS"]["value"], rows["HERALD_PARTITIONS"]["source"]) == (
        "16", "environment")
    assert rows["REDIS_URL"]["value"] == "redis://u:****@h:1/0"
    assert rows["HERALD_INBOX_MAX"] == {"name": "HERALD_INBOX_MAX", "value": "1000",
                                        "source": "default"}
    assert doc["credentials_file"].endswith("credentials.json") and doc["ignored"] == []
    text = config(env)
    assert text.returncode == 0
    assert any(line.startswith("HERALD_API_KEYS") and line.endswith("credentials file")
               for line in text.stdout.splitlines())


def test_a_bad_value_is_one_line(tmp_path: Path) -> None:
    done = config(base_env(HERALD_DATA_DIR=str(tmp_path), HERALD_PARTITIONS="zero"))
    assert done.returncode == 2
    assert done.stderr.strip() == ("herald: error: HERALD_PARTITIONS='zero' is invalid: "
                                   "invalid literal for int() with base 10: 'zero'")
