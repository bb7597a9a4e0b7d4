"""``herald run [--host H] [--port P]``: everything in one process, for development.

Starts the private server when ``REDIS_URL`` is unset (kept on the data folder,
append-only), then the API and every role registered in ``consumers.roles.ROLES``
(projector, scheduler, delivery workers) on one loop and one Redis pool, and
prints the URL. Unset credentials come from the data folder's development file
(made on first run; see api/credentials.py).

SIGINT/SIGTERM: stop accepting requests, tell the roles to stop, wait for them
(``ROLE_STOP_S``, then cancel), close the pool, stop the private server. A role
that crashes stops everything with exit code 1 (a broken all-in-one should not
look alive).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from api.app import create_app
from api.credentials import with_dev_credentials
from api.server import serve, stop_on_signals
from scripts.runtime import (
    EXIT_FAILED,
    EXIT_OK,
    guarded,
    load_settings,
    redis_client,
    run_async,
    server,
)
from streams.log import get_logger
from streams.settings import Settings

log = get_logger("herald.run")
ROLE_STOP_S = 10.0
Role = Callable[[Settings, Any, asyncio.Event], Awaitable[None]]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (HERALD_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (HERALD_PORT, 8080)")


def registered_roles() -> Mapping[str, Role]:
    """Every role the consumers room registers, by name."""
    from consumers.roles import ROLES

    return {name: getattr(role, "run", role) for name, role in dict(ROLES).items()}


async def _stop_roles(tasks: dict[str, asyncio.Task[None]], stop_roles: asyncio.Event) -> None:
    stop_roles.set()
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks.values(), timeout=ROLE_STOP_S)
    for task in pending:
        log.warning("role_cancelled", role=task.get_name(), after_s=ROLE_STOP_S)
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def run_all(settings: Settings, banner: str = "") -> int:
    """API + roles until a signal (EXIT_OK) or a role's crash (EXIT_FAILED)."""
    stop = stop_on_signals()
    roles = registered_roles()
    async with redis_client(settings, settings.redis_url or "") as redis:
        serving = await serve(create_app(settings, redis=redis), settings.host, settings.port)
        stop_roles = asyncio.Event()
        tasks = {name: asyncio.create_task(role(settings, redis, stop_roles), name=name)
                 for name, role in roles.items()}
        sys.stdout.write(f"Herald is running at {serving.url}/ (roles: "
                         f"{', '.join(roles) or 'none'}){banner}\nStop with Ctrl-C.\n")
        sys.stdout.flush()
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks.values()],
                                     return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in done if t is not waiter]
        for task in crashed:
            exc = task.exception() if not task.cancelled() else None
            log.error("role_stopped_unexpectedly", role=task.get_name(),
                      error=repr(exc) if exc else "returned")
        waiter.cancel()
        await serving.stop()
        await _stop_roles(tasks, stop_roles)
        log.info("herald_stopped")
    return EXIT_FAILED if crashed else EXIT_OK


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        settings = load_settings(host=args.host, port=args.port)
        generated_key = not settings.api_keys
        with server(settings) as srv:
            settings = settings.replace(redis_url=srv.url)
            settings, creds = with_dev_credentials(settings, create=True)
            banner = ""
            if creds is not None and generated_key:
                banner = (f"\nDevelopment service key: {settings.api_keys[0]} (from {creds}); "
                          "user tokens: herald token USER")
            return run_async(lambda: run_all(settings, banner))

    return guarded(body)
