"""``herald erase USER``: forget a user (streams/erasure.py).

Deletes the user's data key, so every sealed copy of their content — in Redis,
snapshots and archive segments — is unreadable at once, then appends ``user.erased``,
which removes their inbox, read state, preferences, profile, pending schedules and
digests; replay honours it. Prints ``{"user", "position", "data_key_deleted"}``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from herald.command import EXIT_OK, command, connected
from herald.streams.erasure import erase_user
from herald.streams.producer import Producer
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", help="the user id to erase")


@command
def main(args: argparse.Namespace) -> int:
    return connected(lambda settings, redis: _erase(args.user, settings, redis))


async def _erase(user: str, settings: Settings, redis: Any) -> int:
    appended, had_key = await erase_user(Producer(redis, settings), user)
    out = {"user": user, "position": appended.position, "data_key_deleted": had_key}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return EXIT_OK
