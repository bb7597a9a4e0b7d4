"""Settings: parsed from the environment, errors name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.streams.errors import SettingsError
from herald.streams.settings import Settings, parse_duration


def test_defaults_and_parsing() -> None:
    s = Settings.from_env({"HERALD_PARTITIONS": "16", "HERALD_DEDUPE_WINDOW": "2h",
                           "HERALD_API_KEYS": "a, b", "HERALD_DATA_DIR": "/tmp/x",
                           "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert s.partitions == 16
    assert s.dedupe_window_s == 7200
    assert s.api_keys == ("a", "b")
    assert s.data_dir == Path("/tmp/x")
    assert s.redis_url == "redis://127.0.0.1:1/0"
    assert Settings.from_env({}).partitions == 64


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HERALD_PARTITIONS": "zero"}, "HERALD_PARTITIONS"),
        ({"HERALD_PARTITIONS": "-1"}, "HERALD_PARTITIONS"),
        ({"HERALD_PARTITIONS": "5000"}, "HERALD_PARTITIONS"),
        ({"HERALD_APPENDFSYNC": "never"}, "HERALD_APPENDFSYNC"),
        ({"HERALD_DEDUPE_WINDOW": "soon"}, "HERALD_DEDUPE_WINDOW"),
        ({"HERALD_CORS_ORIGINS": "*", "HERALD_CORS_CREDENTIALS": "true"},
         "HERALD_CORS_ORIGINS"),
        ({"HERALD_CORS_ORIGINS": "https://app.example.com/"}, "HERALD_CORS_ORIGINS"),
        ({"HERALD_CORS_ORIGINS": "app.example.com"}, "HERALD_CORS_ORIGINS"),
        ({"HERALD_TLS_CERT": "/etc/cert.pem"}, "HERALD_TLS_KEY"),
        ({"HERALD_METRICS_PORT": "70000"}, "HERALD_METRICS_PORT"),
        ({"HERALD_PREFIX": "a b"}, "HERALD_PREFIX"),
        ({"HERALD_REDIS_CLUSTER": "maybe"}, "HERALD_REDIS_CLUSTER"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("15m") == 900
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("3") == 3
    with pytest.raises(ValueError):
        parse_duration("-3s")
