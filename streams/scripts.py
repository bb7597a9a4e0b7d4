"""Lua scripts: real files next to the room that owns them, run by EVALSHA.

:class:`Lua` is the script; :func:`register` binds one to a client as a
:class:`Script` for single calls (``await script(keys=..., args=...)``) and for many
calls in one round trip (``await script.many(calls)``). Both load the script and
send again whatever was answered NOSCRIPT — a NOSCRIPT call ran nothing, so
resending writes nothing twice — on a standalone server and on a Cluster alike
(SCRIPT LOAD goes to every primary; a replica promoted by a failover has no
scripts, and its first NOSCRIPT loads them). redis-py's own script objects are not
used: inside a Cluster pipeline they never load a missing script. On the hot paths
the caller queues :meth:`Lua.queue` calls on its own :class:`Batch` and resends.

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


def register(redis: Any, owner: str | Path, name: str) -> Script:
    """``lua/<name>.lua`` beside the module ``owner`` (its ``__file__``), bound to an
    asyncio client (standalone or Cluster)."""
    return Script(redis, Lua(owner, name))


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


class Script:
    """A :class:`Lua` bound to one asyncio client; see the module docstring."""

    __slots__ = ("lua", "redis")

    def __init__(self, redis: Any, lua: Lua) -> None:
        self.redis = redis
        self.lua = lua

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        """One call; error replies raise (redis.ResponseError)."""
        return await self.lua(self.redis, keys, args)

    async def many(self, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Every call in one round trip (routed per key on a Cluster); one reply each,
        error replies as values (a NOSCRIPT one is loaded and sent again)."""
        from herald.streams.connection import Batch  # connection imports settings, not us

        batch = Batch(self.redis)
        for keys, args in calls:
            self.lua.queue(batch, keys, args)
        replies = await batch.execute()
        again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if again:
            await self.lua.load(self.redis)
            retry = Batch(self.redis)
            for i in again:
                self.lua.queue(retry, *calls[i])
            for i, reply in zip(again, await retry.execute(), strict=True):
                replies[i] = reply
        return replies
