"""``herald config [--json]``: the effective configuration and where each value came from.

One line per setting: variable, value (secrets masked: streams/configuration.py), and
its source — ``default``, ``environment`` or ``credentials file`` (the data folder's
development credentials, api/credentials.py). Then the ``HERALD_*`` variables that are
not read: unknown names with a did-you-mean, Kubernetes service links. Needs no server.
"""

from __future__ import annotations

import argparse
import os
import sys

import orjson

from herald.api.credentials import with_dev_credentials
from herald.command import EXIT_OK, command
from herald.streams.configuration import document
from herald.streams.log import configure_logging
from herald.streams.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document")


@command
def main(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    settings = Settings.from_env(env)
    configure_logging(settings.log_level, settings.log_format)
    filled, path = with_dev_credentials(settings, create=False)
    from_file = []
    if path is not None:
        from_file = [name for name, before, after in (
            ("HERALD_API_KEYS", settings.api_keys, filled.api_keys),
            ("HERALD_TOKEN_SECRET", settings.token_secret, filled.token_secret),
        ) if before != after]
    doc = document(filled, env, from_file)
    if path is not None:
        doc["credentials_file"] = str(path)
    if args.json:
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return EXIT_OK
    width = max(len(row["name"]) for row in doc["settings"])
    for row in doc["settings"]:
        print(f"{row['name']:<{width}}  {row['value'] or '(empty)':<40}  {row['source']}")
    for note in doc["ignored"]:
        print(f"ignored: {note['note']}")
    return EXIT_OK
