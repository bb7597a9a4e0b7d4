"""Development credentials: a service key and token secret kept in the data folder.

``herald run`` (the all-in-one development command) fills unset service keys
(``HERALD_API_KEYS`` and ``HERALD_SERVICE_KEYS`` both empty) and an unset
``HERALD_TOKEN_SECRET`` from ``<data_dir>/credentials.json``, creating it (mode 0600,
random values) on first use, so ``herald token`` and ``herald api`` on the same folder
agree with it. Values from the environment
always win. Production sets both variables and never needs the file.

Failure modes: OSError when the folder is not writable; SettingsError for a
corrupt file (names it; delete it to regenerate).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import orjson

from herald.streams.errors import SettingsError
from herald.streams.settings import Settings

FILE_NAME = "credentials.json"


def credentials_path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


def _load(path: Path) -> dict[str, str]:
    try:
        data = orjson.loads(path.read_bytes())
        key, secret = data["api_key"], data["token_secret"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SettingsError(f"{path} is not a Herald credentials file; delete it") from exc
    if not (isinstance(key, str) and isinstance(secret, str) and len(secret) >= 32):
        raise SettingsError(f"{path} holds unusable credentials; delete it")
    return {"api_key": key, "token_secret": secret}


def _create(path: Path) -> dict[str, str]:
    data = {"api_key": "hk_" + secrets.token_urlsafe(24),
            "token_secret": secrets.token_urlsafe(48)}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _load(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return data


def with_dev_credentials(settings: Settings, *, create: bool) -> tuple[Settings, Path | None]:
    """Settings with unset credentials filled from the file (made when ``create``).

    Returns the settings and the file's path when it was used, else None.
    """
    has_keys = bool(settings.api_keys or settings.service_keys)
    if has_keys and settings.token_secret:
        return settings, None
    path = credentials_path(settings)
    if path.exists():
        data = _load(path)
    elif create:
        data = _create(path)
    else:
        return settings, None
    filled = settings.replace(
        api_keys=settings.api_keys if has_keys else (data["api_key"],),
        token_secret=settings.token_secret or data["token_secret"],
    )
    return filled, path
