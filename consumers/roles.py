"""Worker roles: what ``herald worker --roles a,b`` can run in one process.

A role is ``async def run(settings, redis, stop: asyncio.Event) -> None``: it runs
until ``stop`` is set, then finishes its batch, acks, releases its leases and
returns. :data:`ROLES` maps names to them; add a role with :func:`register_role`
(or one line in :data:`ROLES` below). A role that consumes a group with the
runtime also registers its handler factory in :data:`DLQ_HANDLERS` under the group
name, so ``herald dlq retry`` can offer that group's dead letters again.

:func:`run_roles` runs several roles until ``stop`` is set; when one role fails,
the others are stopped gracefully and the error is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from herald.consumers.channels import registry as providers
from herald.consumers.delivery import worker as delivery_worker
from herald.consumers.errors import UnknownRoleError
from herald.consumers.fanout import worker as fanout
from herald.consumers.group.handler import HandlerFactory
from herald.consumers.projection import projector
from herald.consumers.retention import role as retention
from herald.consumers.schedule import scheduler
from herald.consumers.workflows import engine as workflows
from herald.streams.connection import eviction_warning
from herald.streams.log import get_logger
from herald.streams.settings import Settings

RoleFactory = Callable[[Settings, Any, asyncio.Event], Awaitable[None]]

ROLES: dict[str, RoleFactory] = {
    "projector": projector.run,
    "scheduler": scheduler.run,
    "retention": retention.run,
    "fanout": fanout.run,
    "workflows": workflows.run,
}

DLQ_HANDLERS: dict[str, HandlerFactory] = {
    projector.GROUP: projector.projector_factory,
    workflows.GROUP: workflows.factory,
}

log = get_logger(__name__)

# One role per delivery channel (webhook, sms, wechat, email, push), each its own group.
for _channel in delivery_worker.CHANNEL_ROLES:
    ROLES[_channel] = delivery_worker.role(_channel)
    DLQ_HANDLERS[_channel] = delivery_worker.handler_factory(_channel)


def check_roles(names: Sequence[str], settings: Settings) -> None:
    """Every configured provider of the channel roles among ``names`` has what it needs
    (consumers/channels/registry.py); SettingsError naming the variables otherwise, so a
    command exits 2 before anything starts."""
    providers.check(settings, [n for n in names if n in delivery_worker.CHANNEL_ROLES])


def register_role(name: str, run: RoleFactory, *, group: str | None = None,
                  handler: HandlerFactory | None = None) -> None:
    """Add a role (and the handler factory of its group, for ``herald dlq retry``)."""
    ROLES[name] = run
    if group is not None and handler is not None:
        DLQ_HANDLERS[group] = handler


def resolve(names: Sequence[str] | None) -> list[str]:
    """The roles to run (all registered when ``names`` is empty); UnknownRoleError."""
    if not names:
        return list(ROLES)
    unknown = [n for n in names if n not in ROLES]
    if unknown:
        raise UnknownRoleError(
            f"unknown role {unknown[0]!r}; known roles: {', '.join(sorted(ROLES))}"
        )
    return list(dict.fromkeys(names))


async def run_roles(
    names: Sequence[str], settings: Settings, redis: Any, stop: asyncio.Event
) -> None:
    """Run the named roles until ``stop``; a failing role stops the others, then raises."""
    chosen = resolve(names)
    check_roles(chosen, settings)
    tasks: dict[asyncio.Future[None], str] = {
        asyncio.ensure_future(ROLES[n](settings, redis, stop)): n for n in chosen
    }
    log.info("worker_started", roles=list(tasks.values()))
    warning = await eviction_warning(redis)
    if warning:
        log.warning("server_evicts", detail=warning)
    failure: BaseException | None = None
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception() if not task.cancelled() else None
            if exc is not None and failure is None:
                failure = exc
                log.error("role_failed", role=tasks[task], error=str(exc))
                stop.set()
            elif not stop.is_set() and exc is None:
                log.warning("role_ended", role=tasks[task])
    if failure is not None:
        raise failure
    log.info("worker_stopped", roles=list(tasks.values()))
