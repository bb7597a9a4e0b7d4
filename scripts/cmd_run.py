"""``herald run [--host H] [--port P]``: everything in one process, for development.

Starts the private server when ``REDIS_URL`` is unset (kept on the data folder,
append-only), then the API and every role registered in ``consumers.roles.ROLES``
(projector, scheduler, delivery workers) on one loop and one Redis pool, and
prints the URL. The roles' Prometheus series are on the API's ``/metrics``. Unset
credentials come from the data folder's development file (made on first run; see
api/credentials.py).

SIGINT/SIGTERM: stop accepting requests, tell the roles to stop, wait for them
(``ROLE_STOP_S``, then cancel), close the pool, stop the private server. A role
that crashes stops everything with exit code 1 (a broken all-in-one should not
look alive).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from herald.api.app import create_app
from herald.api.context import METRICS
from herald.api.credentials import with_dev_credentials
from herald.api.server import serve, stop_on_signals, tls_context
from herald.command import (
    EXIT_FAILED,
    EXIT_OK,
    command,
    load_settings,
    redis_client,
    run_async,
    server,
)
from herald.consumers.metrics import consumer_metrics
from herald.consumers.roles import check_roles, resolve, run_roles
from herald.streams.log import get_logger
from herald.streams.settings import Settings

log = get_logger("herald.run")
ROLE_STOP_S = 10.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (HERALD_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (HERALD_PORT, 8080)")


async def run_all(settings: Settings, banner: str = "") -> int:
    """API + every registered role until a signal (EXIT_OK) or a role's failure (EXIT_FAILED)."""
    stop = stop_on_signals()
    names = resolve(None)
    async with redis_client(settings, settings.redis_url or "") as redis:
        app = create_app(settings, redis=redis)
        app[METRICS].include(consumer_metrics())  # the roles' series on the API's /metrics
        serving = await serve(app, settings.host, settings.port,
                              ssl_context=tls_context(settings))
        stop_roles = asyncio.Event()
        roles = asyncio.create_task(run_roles(names, settings, redis, stop_roles), name="roles")
        sys.stdout.write(f"Herald is running at {serving.url}/ (roles: {', '.join(names)})"
                         f"{banner}\nStop with Ctrl-C.\n")
        sys.stdout.flush()
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, roles], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await serving.stop()
        stop_roles.set()
        failed = False
        try:
            await asyncio.wait_for(roles, ROLE_STOP_S)
        except TimeoutError:
            log.warning("roles_cancelled", after_s=ROLE_STOP_S)
            failed = True
        except Exception as exc:  # run_roles logged which role failed
            log.error("herald_failed", error=repr(exc))
            failed = True
        if roles.done() and not failed and not stop.is_set():
            failed = True  # every role returned on its own: nothing left to serve
        log.info("herald_stopped")
    return EXIT_FAILED if failed else EXIT_OK


@command
def main(args: argparse.Namespace) -> int:
    settings = load_settings(host=args.host, port=args.port)
    tls_context(settings)  # bad TLS files: exit 2 before anything starts
    check_roles(resolve(None), settings)  # and a provider's missing settings
    generated_key = not settings.api_keys
    with server(settings) as srv:
        settings = settings.replace(redis_url=srv.url)
        settings, creds = with_dev_credentials(settings, create=True)
        banner = ""
        if creds is not None and generated_key:
            banner = (f"\nDevelopment service key: {settings.api_keys[0]} (from {creds}); "
                      "user tokens: herald token USER")
        return run_async(lambda: run_all(settings, banner))
