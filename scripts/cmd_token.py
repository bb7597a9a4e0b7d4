"""``herald token USER [--ttl 1h]``: mint a user token (development and tests).

Signs with ``HERALD_TOKEN_SECRET``, or with the development secret that
``herald run`` keeps in the data folder when the variable is unset.
"""

from __future__ import annotations

import argparse
import sys

from herald.api.auth import minted_for
from herald.api.credentials import with_dev_credentials
from herald.command import EXIT_OK, UsageError, command, load_settings
from herald.streams.settings import parse_duration


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", help="the user id the token acts for (its `sub`)")
    parser.add_argument("--ttl", default="1h", help="lifetime, e.g. 15m, 1h, 7d (default 1h)")
    parser.add_argument("--tenant", default="", help="the user's tenant (default: none)")


@command
def main(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl)
    except ValueError as exc:
        raise UsageError(f"--ttl: {exc}") from exc
    if ttl < 1:
        raise UsageError("--ttl must be at least 1s")
    settings, _path = with_dev_credentials(load_settings(), create=False)
    if not settings.token_secret:
        raise UsageError(
            "HERALD_TOKEN_SECRET is not set and there is no development secret in "
            f"{settings.data_dir} (start `herald run` once, or set the variable)"
        )
    sys.stdout.write(minted_for(settings, args.user, ttl, tenant=args.tenant) + "\n")
    return EXIT_OK
