"""Reading templates: the ``~templates`` partition's versioned definitions
(consumers/projection/versions.py), one store per process."""

from __future__ import annotations

from typing import Any

from herald.consumers.projection.versions import Version, VersionedStore
from herald.streams.events import TEMPLATES_USER
from herald.streams.keys import Keys
from herald.streams.settings import Settings

__all__ = ["Template", "TemplateStore"]

Template = Version  # one version of a template


class TemplateStore(VersionedStore):
    """Template reads of one prefix; one per process."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        super().__init__(redis, settings, TEMPLATES_USER, Keys.template, Keys.template_index)
