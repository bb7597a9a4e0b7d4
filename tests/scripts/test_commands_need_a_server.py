"""CLI honesty: every command but ``herald run`` connects to a running server and fails
clearly (exit 1, one line saying how to start one) when there is none — it never
starts a private server of its own; ``herald publish --at`` in the past is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from herald.streams.server import free_port
from tests.scripts.test_server_commands import base_env

HERALD = str(Path(sys.executable).with_name("herald"))
COMMANDS = [
    ["status"], ["status", "--notification", "0" * 26], ["publish", "--user", "a", "--title", "t"],
    ["inbox", "alice"], ["dlq", "list"], ["replay", "--quiet"], ["replay", "--verify", "--quiet"],
    ["snapshot"], ["erase", "alice"], ["worker", "--roles", "projector"], ["api", "--port", "8"],
]


def herald(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HERALD, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_without_a_server_every_command_fails_clearly(tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "data"
    done = herald(*args, env=base_env(HERALD_DATA_DIR=str(data)))
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("herald: error: no Herald server is running"), done.stderr
    assert "herald run" in lines[-1] and "REDIS_URL" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (data / "server.url").exists() and not (data / "appendonlydir").exists()


def test_a_stale_server_url_is_not_a_server(tmp_path: Path) -> None:
    """``server.url`` left by a crashed ``herald run``: nothing answers there."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.url").write_text(f"redis://127.0.0.1:{free_port()}/0\n")
    done = herald("status", env=base_env(HERALD_DATA_DIR=str(data)))
    assert done.returncode == 1 and "no Herald server is running" in done.stderr


def test_an_unreachable_redis_url_is_one_line(tmp_path: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    for args in (["status"], ["worker"], ["api", "--port", "8"], ["run", "--port", "8"]):
        done = herald(*args, env=base_env(REDIS_URL=url, HERALD_DATA_DIR=str(tmp_path)))
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            "herald: error: cannot reach Redis at redis://:****@127.0.0.1:")
        assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_publish_at_a_past_time_is_refused_unless_allowed(redis_url: str, tmp_path: Path
                                                          ) -> None:
    env = base_env(REDIS_URL=redis_url, HERALD_PREFIX=f"past{tmp_path.name[-8:]}",
                   HERALD_PARTITIONS="8", HERALD_DATA_DIR=str(tmp_path))
    args = ["publish", "--user", "ann", "--title", "t", "--at", "2020-01-01T09:00:00"]
    refused = herald(*args, env=env)
    assert refused.returncode == 2
    assert "in the past" in refused.stderr and "--allow-past" in refused.stderr
    sent = herald(*args, "--allow-past", "--cancel-key", "k1", env=env)
    assert sent.returncode == 0, sent.stderr
    assert '"duplicate":false' in sent.stdout
