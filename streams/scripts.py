"""Lua scripts: real files next to the room that owns them, registered once.

redis-py's ``register_script`` objects call EVALSHA and reload on NOSCRIPT, and
work inside pipelines, so callers never handle script caching themselves.

A line ``--@include NAME`` is replaced by ``streams/lua/NAME.lua``: Lua shared by
several scripts (Redis runs each script as one text, so it is spliced in here).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

INCLUDE = "--@include "


@cache
def script_source(path: Path) -> str:
    """The text of a Lua file with its includes spliced in (read once per process)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(
        script_source(lua_path(STREAMS_DIR, line[len(INCLUDE):].strip()))
        if line.startswith(INCLUDE) else line
        for line in lines
    )


def lua_path(package_dir: Path, name: str) -> Path:
    """``<package_dir>/lua/<name>.lua``; raises FileNotFoundError if missing."""
    path = package_dir / "lua" / f"{name}.lua"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def register(redis: Any, package_dir: Path, name: str) -> Any:
    """Register ``lua/<name>.lua`` of a package on a client (async or sync)."""
    return redis.register_script(script_source(lua_path(package_dir, name)))


STREAMS_DIR = Path(__file__).resolve().parent
