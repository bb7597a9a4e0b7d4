"""The private server's allocator: jemalloc preloaded into a libc-malloc build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from herald.streams import allocator
from herald.streams.errors import ServerStartError, SettingsError
from herald.streams.server import find_server_binary, start_server
from herald.streams.settings import Settings


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _fake_binary(tmp_path: Path, version: str) -> str:
    path = tmp_path / "fake-server"
    path.write_text(f"#!/bin/sh\necho '{version}'\n")
    path.chmod(0o755)
    return str(path)


def test_the_binary_reports_how_it_was_built() -> None:
    built = allocator.built_with(find_server_binary())
    assert built in ("libc", "jemalloc", "tcmalloc")


@pytest.mark.skipif(allocator.find_jemalloc() is None, reason="libjemalloc2 not installed "
                    "(make installs it; CI always has it)")
def test_a_libc_build_runs_with_jemalloc_and_serves(tmp_path: Path) -> None:
    binary = find_server_binary()
    handle = start_server(tmp_path, die_with_parent=True, allocator="jemalloc")
    try:
        assert handle.process is not None
        expected = "jemalloc" if allocator.built_with(binary) == "libc" else None
        if expected:
            assert handle.allocator == "jemalloc"
            assert "libjemalloc" in _maps(handle.process.pid)
        client = redis.Redis.from_url(handle.url)
        client.xadd("herald:{p00}:log", {"e": b"x" * 10_000})
        assert client.xlen("herald:{p00}:log") == 1
        client.close()
    finally:
        handle.stop()


def test_libc_means_nothing_preloaded(tmp_path: Path) -> None:
    handle = start_server(tmp_path, die_with_parent=True, allocator="libc")
    try:
        assert handle.process is not None
        assert "libjemalloc" not in _maps(handle.process.pid)
        if allocator.built_with(find_server_binary()) == "libc":
            assert handle.allocator == "libc"
    finally:
        handle.stop()


def test_jemalloc_required_but_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: None)
    binary = _fake_binary(tmp_path, "Valkey server v=8.1.8 sha=0:1 malloc=libc bits=64")
    with pytest.raises(ServerStartError, match="libjemalloc2"):
        allocator.server_environment(binary, "jemalloc")
    env, used = allocator.server_environment(binary, "auto")
    assert env is None and used == "libc"


def test_preload_keeps_what_was_preloaded_already(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: "/opt/lib/libjemalloc.so.2")
    monkeypatch.setenv("LD_PRELOAD", "/opt/lib/other.so")
    binary = _fake_binary(tmp_path, "Valkey server v=8.1.8 malloc=libc")
    env, used = allocator.server_environment(binary, "auto")
    assert used == "jemalloc" and env is not None
    assert env["LD_PRELOAD"] == "/opt/lib/libjemalloc.so.2 /opt/lib/other.so"
    assert env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(("version", "expected"), [
    ("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64", "jemalloc-5.3.0"),
    ("something else entirely", "unknown"),
])
def test_a_binary_with_its_own_allocator_is_started_as_it_is(
    tmp_path: Path, version: str, expected: str
) -> None:
    env, used = allocator.server_environment(_fake_binary(tmp_path, version), "jemalloc")
    assert env is None and used == expected


def test_unknown_choices_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match="unknown server allocator"):
        allocator.server_environment(_fake_binary(tmp_path, "malloc=libc"), "tcmalloc")
    with pytest.raises(SettingsError, match="HERALD_SERVER_ALLOCATOR"):
        Settings.from_env({"HERALD_SERVER_ALLOCATOR": "tcmalloc"})
