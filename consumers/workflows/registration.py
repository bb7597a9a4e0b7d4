"""Registering a workflow version: check it, then append ``workflow.registered``.

Shared by ``PUT /v1/workflows/{key}`` and ``herald workflow put``. A definition equal to
the latest version is kept (nothing appended); otherwise version latest + 1 is appended
as an event of the reserved user ``~workflows`` under the idempotency key
``wf:<key>:<version>``, so two racing registrations yield one.

Failure modes: :class:`DefinitionInvalid` (every error, by path) before anything is
appended; :class:`VersionTaken` when another registration appended that version
first (consumers/projection/versions.py ``register_version``, shared with templates);
Redis errors propagate.
"""

from __future__ import annotations

from typing import Any

from herald.consumers.errors import ConsumerError
from herald.consumers.projection.versions import Registered, VersionTaken, register_version
from herald.consumers.templates.render import Renderer
from herald.consumers.templates.store import TemplateStore
from herald.consumers.workflows.definition import Problem, problems
from herald.consumers.workflows.store import WorkflowStore
from herald.streams.events import WORKFLOWS_USER, WorkflowRegistered
from herald.streams.producer import Producer

__all__ = ["DefinitionInvalid", "Registered", "VersionTaken", "check", "register"]


class DefinitionInvalid(ConsumerError):
    """Raised when a definition has errors; ``errors`` lists each (path, message)."""

    def __init__(self, errors: list[Problem]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors[:3]))
        self.errors = errors


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
    return await register_version(
        store, producer, WORKFLOWS_USER, key, definition,
        lambda version: WorkflowRegistered(workflow_key=key, version=version,
                                           definition=definition), "wf")
