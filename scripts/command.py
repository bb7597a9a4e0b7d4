"""Shared plumbing of the command line: settings, logging, the server, exit codes.

A subcommand's ``main`` is decorated with :func:`command` (errors become a message and
an exit code) and, when it needs Redis, hands its work to :func:`connected` (the
server, one client, uvloop)::

    @command
    def main(args):
        check(args)                                   # UsageError -> exit 2
        return connected(lambda settings, redis: work(args, settings, redis))

Exit codes: 0 success; 1 the operation failed (or ``--verify`` found a
difference); 2 bad input or configuration, with a message on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

from herald.streams.connection import connect
from herald.streams.errors import HeraldError, SettingsError, ValidationError
from herald.streams.log import configure_logging
from herald.streams.process import tune_gc
from herald.streams.server import ServerHandle, ensure_server
from herald.streams.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(HeraldError):
    """Raised by a command for bad arguments; exits 2 with the message."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, logging configured from them."""
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format)
    return settings


@contextlib.contextmanager
def server(settings: Settings) -> Iterator[ServerHandle]:
    """The server for a command: REDIS_URL, the one running on the data folder, or a private one."""
    handle = ensure_server(settings)
    try:
        yield handle
    finally:
        handle.stop()


@contextlib.asynccontextmanager
async def redis_client(settings: Settings, url: str) -> AsyncIterator[Any]:
    client = connect(settings, url)
    try:
        yield client
    finally:
        await client.aclose()


def run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a coroutine on uvloop when available."""
    try:
        import uvloop

        return uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main())


def guarded(fn: Callable[[], int]) -> int:
    """Run a command body, turning Herald errors into a message and an exit code."""
    try:
        return fn()
    except (UsageError, ValidationError, SettingsError) as exc:
        print(f"herald: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HeraldError as exc:
        print(f"herald: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("herald: interrupted", file=sys.stderr)
        return 130


def command(main: Callable[[Any], int]) -> Callable[[Any], int]:
    """A subcommand's ``main(args)`` whose Herald errors become a message and an exit
    code (:func:`guarded`)."""

    @functools.wraps(main)
    def wrapped(args: Any) -> int:
        return guarded(lambda: main(args))

    return wrapped


def connected(work: Callable[[Settings, Any], Awaitable[int]],
              settings: Settings | None = None, *, tune_collector: bool = False) -> int:
    """Run ``work(settings, redis)`` on uvloop with the command's server and one client.

    ``settings`` default to :func:`load_settings`; ``tune_collector`` is for long
    decode loops (streams/process.py). The client is closed and a private server
    stopped when the work returns or raises.
    """
    chosen = load_settings() if settings is None else settings

    async def go() -> int:
        if tune_collector:
            tune_gc()
        with server(chosen) as srv:
            async with redis_client(chosen, srv.url) as redis:
                return await work(chosen, redis)

    return run_async(go)
