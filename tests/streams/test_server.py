"""The launcher: start, stop, restart on the same folder keeps every event."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from herald.streams import server as server_mod
from herald.streams.errors import ServerStartError
from herald.streams.server import ensure_server, running_server_url, start_server
from herald.streams.settings import Settings


def test_restart_on_the_same_folder_keeps_every_event(tmp_path: Path) -> None:
    handle = start_server(tmp_path, appendfsync="always", die_with_parent=True)
    try:
        client = redis.Redis.from_url(handle.url)
        for i in range(100):
            client.xadd("herald:{p00}:log", {"e": f"event-{i}"})
        client.close()
        assert running_server_url(tmp_path) == handle.url
    finally:
        handle.stop()
    assert running_server_url(tmp_path) is None
    again = start_server(tmp_path, die_with_parent=True)
    try:
        client = redis.Redis.from_url(again.url)
        rows = client.xrange("herald:{p00}:log")
        client.close()
        assert [f[b"e"] for _, f in rows] == [f"event-{i}".encode() for i in range(100)]
    finally:
        again.stop()


def test_other_commands_find_the_running_server(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    owner = ensure_server(settings)
    try:
        assert owner.owned
        guest = ensure_server(settings)
        assert guest.url == owner.url and not guest.owned
        guest.stop()  # a guest never stops the owner's server
        assert running_server_url(tmp_path) == owner.url
    finally:
        owner.stop()


def test_redis_url_wins(tmp_path: Path) -> None:
    handle = ensure_server(
        Settings.from_env({}, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path)
    )
    assert handle.url == "redis://127.0.0.1:1/0" and not handle.owned


def test_clear_error_when_no_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(server_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ServerStartError, match="REDIS_URL"):
        server_mod.find_server_binary()


def test_a_test_server_dies_with_its_parent(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    code = (
        "import sys, time; from pathlib import Path; from streams.server import start_server; "
        "h = start_server(Path(sys.argv[1]), die_with_parent=True); "
        "print(h.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    while not line.strip().isdigit():  # skip log lines
        line = parent.stdout.readline()
    server_pid = int(line)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{server_pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the server outlived its parent")


def test_scratch_server_is_private_and_gone_after(monkeypatch: pytest.MonkeyPatch) -> None:
    from herald.streams.server import ping, scratch_server

    monkeypatch.delenv("REDIS_URL", raising=False)
    with scratch_server() as (url, folder, private):
        assert private and ping(url)
        assert (folder / "data" / "server.url").read_text().strip() == url
    assert not ping(url) and not folder.exists()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with scratch_server() as (url, _folder, private):
        assert (url, private) == ("redis://127.0.0.1:1/0", False)
