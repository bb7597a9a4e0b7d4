"""Serving an app on a socket, and stopping cleanly (used by the CLI, tests and benchmarks).

The app's own access log replaces aiohttp's (``access_log=None``). Shutdown stops
accepting, gives in-flight requests ``SHUTDOWN_S`` to finish, then runs the
app's cleanup (closing its Redis pool). Signals are handled by the caller
(:func:`stop_on_signals`), so one process can serve the API next to workers.

HTTPS when ``HERALD_TLS_CERT`` and ``HERALD_TLS_KEY`` are set (:func:`tls_context`:
files that cannot be loaded, or a key that does not match the certificate, are a
SettingsError at start). A port that cannot be bound is a ListenError naming it.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import ssl
from dataclasses import dataclass

import redis
from aiohttp import web

from herald.streams.errors import ListenError, RedisUnavailableError, SettingsError
from herald.streams.process import tune_gc
from herald.streams.settings import Settings

SHUTDOWN_S = 5.0
BACKLOG = 1024


@dataclass
class Serving:
    """A started site; ``url`` is where it answers."""

    runner: web.AppRunner
    url: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from ``HERALD_TLS_CERT`` / ``HERALD_TLS_KEY`` (None when
    unset); SettingsError naming both variables when they cannot be loaded."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError(
            f"HERALD_TLS_CERT={settings.tls_cert} / HERALD_TLS_KEY={settings.tls_key}: cannot "
            f"load the certificate and key ({reason}); give PEM files, the key matching the "
            "certificate") from exc
    return context


def _listen_error(host: str, port: int, exc: OSError,
                  hint: str = "--port or HERALD_PORT") -> ListenError:
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another process listens there)"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    else:
        why = exc.strerror or str(exc)
    return ListenError(f"cannot listen on {host}:{port}: {why}; choose another with {hint}")


def check_bindable(host: str, port: int) -> None:
    """Raise ListenError unless ``host:port`` can be bound with SO_REUSEPORT (what the
    processes of ``herald api --workers N`` do), so N processes do not each fail."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise _listen_error(host, port, exc) from exc


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                ssl_context: ssl.SSLContext | None = None,
                port_hint: str = "--port or HERALD_PORT") -> Serving:
    """Start ``app`` on ``host:port`` (port 0: a free one), HTTPS with ``ssl_context``.

    Raises ListenError when it cannot bind, RedisUnavailableError when the app's
    start-up cannot reach Redis.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_S)
    try:
        await runner.setup()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        await runner.cleanup()
        raise RedisUnavailableError(f"cannot reach Redis at start-up: {exc}") from exc
    site = web.TCPSite(runner, host, port, backlog=BACKLOG, reuse_port=reuse_port or None,
                       ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise _listen_error(host, port, exc, port_hint) from exc
    except BaseException:
        await runner.cleanup()
        raise
    tune_gc()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if ssl_context is not None else "http"
    return Serving(runner, f"{scheme}://{shown}:{bound_port}", int(bound_port))


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (handlers installed on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
