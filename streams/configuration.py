"""The effective configuration, secrets masked, each value with where it came from.

``herald config`` prints it. Sources: ``default``, ``environment``, or
``credentials file`` (the data folder's development credentials that ``herald run``
makes, api/credentials.py — the caller says which settings came from there). Secrets
never leave this module in clear: service keys, the token secret, master keys and
every provider password or token are shown as ``****`` (with a count for lists), and
a URL keeps everything but its password (``redis://user:****@host:6379/0``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from herald.streams.environment import Note, audit, describe
from herald.streams.settings import Settings, SnapshotEvery

MASK = "****"
SECRETS = frozenset({
    "HERALD_API_KEYS", "HERALD_TOKEN_SECRET", "HERALD_SECRET_KEYS", "HERALD_SMTP_PASSWORD",
    "HERALD_SMS_AUTH_TOKEN", "HERALD_WECHAT_SECRET", "HERALD_ALIYUN_ACCESS_KEY_SECRET",
    "HERALD_TENCENT_SECRET_KEY", "HERALD_WECOM_SECRET", "HERALD_FCM_CREDENTIALS",
    "HERALD_APNS_PRIVATE_KEY",
})
DEFAULT, ENVIRONMENT, CREDENTIALS_FILE = "default", "environment", "credentials file"
_QUERY_SECRET = re.compile(r"(?i)((?:^|&)(?:password|pass|token|secret)=)[^&]*")


@dataclass(frozen=True, slots=True)
class Row:
    """One setting: its variable, the value as text (masked when secret), the source."""

    name: str
    value: str
    source: str


def redact_url(url: str) -> str:
    """``url`` with its password (userinfo or a ``password=`` query value) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else (f"{MASK}@{host}" if user else host)
    query = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _text(value: Any, field_name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, SnapshotEvery):
        parts = [str(value.events)] if value.events is not None else []
        if value.seconds is not None:
            parts.append(f"{value.seconds:g}s")
        return ",".join(parts)
    if isinstance(value, float) and field_name.endswith("_s"):
        return f"{value:g}s"
    if isinstance(value, Path):
        return str(value)
    return str(value)


def shown(name: str, value: Any, field_name: str = "") -> str:
    """The value of variable ``name`` as ``herald config`` shows it (secrets masked)."""
    text = _text(value, field_name)
    if name in SECRETS:
        if not text:
            return ""
        if isinstance(value, tuple):
            return f"{MASK} ({len(value)} {'key' if len(value) == 1 else 'keys'})"
        return MASK
    if "://" in text:
        return redact_url(text)
    return text


def rows(settings: Settings, env: Mapping[str, str],
         from_credentials: Iterable[str] = ()) -> list[Row]:
    """One row per setting, in declaration order (see the module docstring)."""
    notes = {note.name for note in audit(env, Settings.variables())}
    filled = set(from_credentials)
    out = []
    for f in dataclasses.fields(Settings):
        name = f.metadata["env"]
        if name in filled:
            source = CREDENTIALS_FILE
        elif name in env and name not in notes and not (env[name] == "" and f.default is None):
            source = ENVIRONMENT
        else:
            source = DEFAULT
        out.append(Row(name, shown(name, getattr(settings, f.name), f.name), source))
    return out


def ignored(env: Mapping[str, str]) -> list[Note]:
    """The ``HERALD_*`` variables that are not read (streams/environment.py)."""
    return audit(env, Settings.variables())


def document(settings: Settings, env: Mapping[str, str],
             from_credentials: Iterable[str] = ()) -> dict[str, Any]:
    """The configuration as one JSON-able document (``herald config --json``)."""
    return {
        "settings": [dataclasses.asdict(row) for row in rows(settings, env, from_credentials)],
        "ignored": [{"name": n.name, "kind": n.kind, "suggestion": n.suggestion,
                     "note": describe(n)} for n in ignored(env)],
    }
