"""``herald dev-cluster [--masters 3] [--replicas 1]``: a local Redis Cluster, for
development.

Starts ``masters`` primaries with ``replicas`` replicas each from the server binary
``herald run`` uses (streams/cluster_server.py), on free 127.0.0.1 ports, append-only,
in ``<data folder>/cluster`` (emptied first: each start is a new cluster), waits for
``cluster_state:ok``, prints the environment that points Herald at it, and runs until
SIGINT/SIGTERM, when every node is stopped. The nodes die with the command also when it
is killed outright (no orphaned servers).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading

from herald.command import EXIT_OK, UsageError, command, load_settings
from herald.streams.cluster_server import start_cluster


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--masters", type=int, default=3, help="primaries (default 3)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="replicas of each primary (default 1)")


@command
def main(args: argparse.Namespace) -> int:
    if not 1 <= args.masters <= 16:
        raise UsageError("--masters must be between 1 and 16")
    if not 0 <= args.replicas <= 4:
        raise UsageError("--replicas must be between 0 and 4")
    settings = load_settings()
    folder = settings.data_dir / "cluster"
    shutil.rmtree(folder, ignore_errors=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with start_cluster(folder, masters=args.masters, replicas=args.replicas,
                       appendfsync=settings.appendfsync, die_with_parent=True) as cluster:
        sys.stdout.write(
            f"A cluster of {args.masters} primaries and {args.masters * args.replicas} "
            f"replicas is running in {folder}:\n"
            f"  export REDIS_URL={cluster.url} HERALD_REDIS_CLUSTER=true\n"
            "Stop with Ctrl-C.\n")
        sys.stdout.flush()
        stop.wait()
    return EXIT_OK
