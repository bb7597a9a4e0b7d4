"""The environment as Herald reads it: which ``HERALD_*`` names are settings, which are
Kubernetes service links, which are unknown (with a did-you-mean).

Kubernetes injects, for every Service in a pod's namespace, ``<NAME>_SERVICE_HOST``,
``<NAME>_SERVICE_PORT[_<PORT NAME>]``, ``<NAME>_PORT=tcp://10.0.0.7:8080`` and
``<NAME>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]`` — a Service named ``herald`` (or
``herald-smtp``) gives ``HERALD_PORT=tcp://…`` or ``HERALD_SMTP_PORT=tcp://…``, names
that are also Herald settings. Such values are recognised as service links and
ignored (the setting keeps its default), with a note; other unknown ``HERALD_*``
names are a warning naming the closest setting, never an error (a typo still shows
at start, a platform's injected names never stop a pod).

:func:`audit` only reads; ``Settings.from_env`` skips what it reports and
``herald.command.load_settings`` logs it once logging is configured.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PREFIX = "HERALD_"
# Variables the test-suite and tools read themselves, not settings of a process.
IGNORED_PREFIXES = ("HERALD_TEST_", "HERALD_BENCH_")

_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://[^/\s:]+:\d{1,5}$")
_LINK_NAME = re.compile(
    r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d{1,5}_(TCP|UDP|SCTP)"
    r"(_PROTO|_PORT|_ADDR)?)$"
)

UNKNOWN, SERVICE_LINK = "unknown", "service_link"


@dataclass(frozen=True, slots=True)
class Note:
    """One variable Herald does not read: ``kind`` is :data:`UNKNOWN` or
    :data:`SERVICE_LINK`; ``suggestion`` the closest setting's name (unknown only)."""

    kind: str
    name: str
    suggestion: str | None = None


def is_service_link(name: str, value: str) -> bool:
    """True for a Kubernetes service-link variable (``*_PORT=tcp://host:port``,
    ``*_SERVICE_HOST``, ``*_SERVICE_PORT*``, ``*_PORT_<n>_TCP*``)."""
    if name.endswith("_PORT") and _LINK_VALUE.match(value.strip()):
        return True
    return bool(_LINK_NAME.match(name))


def audit(env: Mapping[str, str], known: Iterable[str]) -> list[Note]:
    """Every ``HERALD_*`` variable of ``env`` that is not read as a setting, sorted by name.

    A known setting whose value is a service link (``HERALD_PORT=tcp://…``) is listed
    as a service link: ``Settings.from_env`` skips it.
    """
    names = set(known)
    settings = sorted(n for n in names if n.startswith(PREFIX))
    notes = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name.startswith(IGNORED_PREFIXES):
            continue
        value = env[name]
        if name in names:
            if name.endswith("_PORT") and is_service_link(name, value):
                notes.append(Note(SERVICE_LINK, name))
            continue
        if is_service_link(name, value):
            notes.append(Note(SERVICE_LINK, name))
            continue
        close = difflib.get_close_matches(name, settings, n=1, cutoff=0.75)
        notes.append(Note(UNKNOWN, name, close[0] if close else None))
    return notes


def skipped(env: Mapping[str, str], known: Iterable[str]) -> set[str]:
    """The names of ``env`` that ``Settings.from_env`` must not parse (see :func:`audit`)."""
    return {note.name for note in audit(env, known)}


def describe(note: Note) -> str:
    """One human sentence about a note (CLI output and log details)."""
    if note.kind == SERVICE_LINK:
        return (f"{note.name} looks like a Kubernetes service link; ignored (Herald does "
                "not read it; the setting of that name, if any, keeps its default)")
    hint = f"; did you mean {note.suggestion}?" if note.suggestion else ""
    return f"{note.name} is not a Herald setting and is ignored{hint}"
