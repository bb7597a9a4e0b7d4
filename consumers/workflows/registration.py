"""Registering a workflow version: check it, then append ``workflow.registered``.

Shared by ``PUT /v1/workflows/{key}`` and ``herald workflow put``. A definition equal to
the latest version is kept (nothing appended); otherwise version latest + 1 is appended
as an event of the reserved user ``~workflows`` under the idempotency key
``wf:<key>:<version>``, so two racing registrations yield one.

Failure modes: :class:`DefinitionInvalid` (every error, by path) before anything is
appended; :class:`VersionTaken` when another registration appended that version
first; Redis errors propagate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald.consumers.errors import ConsumerError
from herald.consumers.templates.render import Renderer
from herald.consumers.templates.store import TemplateStore
from herald.consumers.workflows.definition import Problem, problems
from herald.consumers.workflows.store import WorkflowStore
from herald.streams.events import WORKFLOWS_USER, Appended, WorkflowRegistered
from herald.streams.producer import Producer


class DefinitionInvalid(ConsumerError):
    """Raised when a definition has errors; ``errors`` lists each (path, message)."""

    def __init__(self, errors: list[Problem]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors[:3]))
        self.errors = errors


class VersionTaken(ConsumerError):
    """Raised when another registration appended the same version first."""


@dataclass(frozen=True, slots=True)
class Registered:
    key: str
    version: int
    created: bool
    appended: Appended | None = None


async def check(definition: Any, templates: TemplateStore, renderer: Renderer) -> None:
    """DefinitionInvalid listing every error of ``definition``."""
    if not isinstance(definition, dict):
        raise DefinitionInvalid([("body", "a definition is a JSON object")])
    steps = definition.get("steps")
    names = {str(s.get("template")) for s in (steps if isinstance(steps, list) else [])
             if isinstance(s, dict) and "template" in s}
    found = {name: await templates.get(name) for name in names}
    errors = problems(definition, lambda name: (t.definition if (t := found.get(name))
                                                else None), renderer)
    if errors:
        raise DefinitionInvalid(errors)


async def register(producer: Producer, store: WorkflowStore, templates: TemplateStore,
                   renderer: Renderer, key: str, definition: dict[str, Any]) -> Registered:
    """Check and append one version (module doc)."""
    await check(definition, templates, renderer)
    current = await store.get(key)
    if current is not None and current.definition == definition:
        return Registered(key, current.version, False)
    version = (current.latest if current else 0) + 1
    envelope = producer.envelope(WORKFLOWS_USER, WorkflowRegistered(
        workflow_key=key, version=version, definition=definition),
        idempotency_key=f"wf:{key}:{version}")
    appended = await producer.publish(envelope)
    if appended.duplicate:
        raise VersionTaken(f"version {version} of {key!r} was registered by another request "
                           "just now; read it and register again if yours differs")
    return Registered(key, version, True, appended)
