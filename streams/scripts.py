"""Lua scripts: real files next to the room that owns them, registered once.

redis-py's ``register_script`` objects call EVALSHA and reload on NOSCRIPT, and
work inside pipelines, so callers never handle script caching themselves. On a hot
pipeline, :class:`Lua` is the lighter choice: a redis-py script queued on a pipeline
makes the pipeline send SCRIPT EXISTS first, every time — one more round trip per
pipeline (measured on the projector: see consumers/projection/projector.py); a :class:`Lua`
queues its EVALSHA alone, and the caller sends the calls answered NOSCRIPT again
after :meth:`Lua.load` (a NOSCRIPT call ran nothing, so resending writes nothing twice).

A line ``--@include NAME`` is replaced by ``streams/lua/NAME.lua``: Lua shared by
several scripts (Redis runs each script as one text, so it is spliced in here).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError

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


def lua_path(owner: str | Path, name: str) -> Path:
    """``lua/<name>.lua`` beside ``owner`` (a module's ``__file__``, or its folder);
    raises FileNotFoundError if missing."""
    base = Path(owner).resolve()
    if base.suffix == ".py":
        base = base.parent
    path = base / "lua" / f"{name}.lua"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def register(redis: Any, owner: str | Path, name: str) -> Any:
    """Register ``lua/<name>.lua`` beside the module ``owner`` (its ``__file__``) on a
    client (async or sync)."""
    return redis.register_script(script_source(lua_path(owner, name)))


class Lua:
    """One Lua file run by EVALSHA; see the module docstring for when to use it."""

    def __init__(self, owner: str | Path, name: str) -> None:
        self.source = script_source(lua_path(owner, name))
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def queue(self, pipe: Any, keys: Sequence[Any], args: Sequence[Any]) -> None:
        """Queue one call on a pipeline; a :class:`NoScriptError` reply means: load, resend."""
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self, redis: Any) -> None:
        await redis.script_load(self.source)

    def load_sync(self, redis: Any) -> None:
        redis.script_load(self.source)

    async def __call__(self, redis: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run once on a client, loading the script first if the server lacks it."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(redis)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


STREAMS_DIR = Path(__file__).resolve().parent
