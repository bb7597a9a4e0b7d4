"""Reading workflow definitions: the ``~workflows`` partition's versioned definitions
(consumers/projection/versions.py, the same reads as templates), one store per process."""

from __future__ import annotations

from typing import Any

from herald.consumers.projection.versions import Version, VersionedStore
from herald.streams.events import WORKFLOWS_USER
from herald.streams.keys import Keys
from herald.streams.settings import Settings

__all__ = ["Workflow", "WorkflowStore"]

Workflow = Version  # one version of a workflow definition


class WorkflowStore(VersionedStore):
    """Definition reads of one prefix; one per process."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(redis, settings, WORKFLOWS_USER, Keys.workflow, Keys.workflow_index)
