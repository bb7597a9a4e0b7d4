"""Shared plumbing of the command line: settings, logging, the server, exit codes.

A subcommand's ``main`` is decorated with :func:`command` (errors become a message and
an exit code) and, when it needs Redis, hands its work to :func:`connected` (the
running server, one client, uvloop)::

    @command
    def main(args):
        check(args)                                   # UsageError -> exit 2
        return connected(lambda settings, redis: work(args, settings, redis))

Exit codes: 0 success; 1 the operation failed (or ``--verify`` found a
difference), no server is running, Redis is unreachable, the port is taken; 2 bad
input or configuration, with a message on stderr. Each is one line, never a traceback.

Only ``herald run`` starts a server (:func:`server`); every other command connects to
the one that runs — ``REDIS_URL``, or the data folder's ``server.url`` that a running
``herald run`` left — and fails with exit 1 saying how to start one when there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import Any

import redis

from herald.streams import tenants
from herald.streams.connection import connect, resolve_url
from herald.streams.environment import SERVICE_LINK, UNKNOWN, audit, describe
from herald.streams.errors import HeraldError, SettingsError, ValidationError
from herald.streams.log import configure_logging, get_logger
from herald.streams.process import tune_gc
from herald.streams.server import ServerHandle, ensure_server, reach
from herald.streams.settings import Settings
from herald.streams.validation import check_user

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = get_logger("herald.settings")


def scoped_user(user: str, tenant: str) -> str:
    """``--user`` of ``--tenant`` as Herald stores it (streams/tenants.py); UsageError
    for a bad tenant, ValidationError for a bad user."""
    if tenant and not tenants.is_tenant(tenant):
        raise UsageError("--tenant must be 1-64 of a-z 0-9 _ - (starting a-z 0-9)")
    return tenants.scoped(tenant, check_user(user, "user", scoped=False))


class UsageError(HeraldError):
    """Raised by a command for bad arguments; exits 2 with the message."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, logging configured from them; the variables that
    are not read are logged (:func:`report_environment`)."""
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format)
    report_environment(os.environ)
    return settings


def report_environment(env: Mapping[str, str]) -> None:
    """One warning per unknown ``HERALD_*`` name (with a did-you-mean), one note for all
    Kubernetes service links (streams/environment.py)."""
    notes = audit(env, Settings.variables())
    for note in notes:
        if note.kind == UNKNOWN:
            log.warning("setting_unknown", variable=note.name, suggestion=note.suggestion,
                        detail=describe(note))
    links = [note.name for note in notes if note.kind == SERVICE_LINK]
    if links:
        log.info("service_links_ignored", variables=links,
                 detail="Kubernetes service-link variables: Herald does not read them "
                        "(a setting of the same name keeps its default)")


@contextlib.contextmanager
def server(settings: Settings) -> Iterator[ServerHandle]:
    """``herald run``'s server: REDIS_URL (which must answer), the one running on the data
    folder, or a private one it starts (and stops on exit)."""
    handle = ensure_server(settings)
    try:
        if not handle.owned:
            reach(handle.url)
        yield handle
    finally:
        handle.stop()


def server_url(settings: Settings) -> str:
    """The running server's URL (REDIS_URL or the data folder's ``server.url``), checked
    to answer. Raises NoServerError or RedisUnavailableError (exit 1, one line)."""
    url = resolve_url(settings)
    reach(url)
    return url


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


def fail(error: BaseException | str, code: int) -> int:
    """Print ``error`` as one line on stderr and return ``code``."""
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"herald: error: {text}", file=sys.stderr)
    return code


def guarded(fn: Callable[[], int]) -> int:
    """Run a command body, turning Herald errors into one line and an exit code (and
    Redis or OS errors met after start-up too: a command never ends in a traceback for
    them)."""
    try:
        return fn()
    except (UsageError, ValidationError, SettingsError) as exc:
        return fail(exc, EXIT_USAGE)
    except HeraldError as exc:
        return fail(exc, EXIT_FAILED)
    except redis.RedisError as exc:
        return fail(f"Redis: {exc}", EXIT_FAILED)
    except OSError as exc:
        return fail(exc, EXIT_FAILED)
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
    """Run ``work(settings, redis)`` on uvloop with one client of the running server.

    ``settings`` default to :func:`load_settings`; ``tune_collector`` is for long
    decode loops (streams/process.py). Never starts a server (:func:`server_url`); the
    client is closed when the work returns or raises.
    """
    chosen = load_settings() if settings is None else settings
    url = server_url(chosen)
    chosen = chosen.replace(redis_url=url)

    async def go() -> int:
        if tune_collector:
            tune_gc()
        async with redis_client(chosen, url) as redis:
            return await work(chosen, redis)

    return run_async(go)
