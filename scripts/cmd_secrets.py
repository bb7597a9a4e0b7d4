"""``herald secrets rotate|status``: the master keys that wrap every user's data key.

``rotate`` re-wraps every data key with the first key of ``HERALD_SECRET_KEYS``
(streams/keystore.py ``rotate``); ``status`` counts the data keys each master key
wraps. Rotation: put the new key first in ``HERALD_SECRET_KEYS`` (keep the old one
after it), restart, run ``herald secrets rotate``; when ``status`` shows only the new
id, drop the old key. Prints one JSON object. Exit 2 without master keys.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from herald.command import EXIT_OK, UsageError, command, connected
from herald.streams.keystore import KeyStore, rotate
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("rotate", "status"),
                        help="rotate: re-wrap every data key with the current master key; "
                             "status: data keys per master key")


@command
def main(args: argparse.Namespace) -> int:
    return connected(lambda settings, redis: _run(args.action, settings, redis))


async def _run(action: str, settings: Settings, redis: Any) -> int:
    store = KeyStore(redis, settings)
    if action == "rotate":
        if store.masters.current is None:
            raise UsageError("HERALD_SECRET_KEYS is empty: set it (id:base64 of 32 random "
                             "bytes, the new key first) before rotating")
        out = await rotate(store)
    else:
        totals: dict[str, int] = {}
        for partition in range(settings.partitions):
            for name, count in (await store.wrapping(partition)).items():
                totals[name] = totals.get(name, 0) + count
        out = {"current": store.masters.current, "wrapped_by": totals}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return EXIT_OK
