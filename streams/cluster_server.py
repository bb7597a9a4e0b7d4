"""A private Redis/Valkey Cluster on 127.0.0.1, for development, tests and benchmarks.

``start_cluster(folder)`` starts ``masters`` primaries and ``replicas`` replicas of
each from the same server binary ``herald run`` uses (streams/server.py), every
node with an append-only file in its own folder, gives the primaries equal slot
ranges, joins them (CLUSTER MEET), attaches the replicas (CLUSTER REPLICATE) and
returns once every node reports ``cluster_state:ok`` and every replica is in sync.
``herald dev-cluster`` runs one in the foreground; the test suite starts one per
session.

:meth:`ClusterHandle.move_slots` reshards live, with the protocol ``valkey-cli
--cluster reshard`` uses: for each slot ``CLUSTER SETSLOT … IMPORTING`` on the
target and ``MIGRATING`` on the source, ``CLUSTER GETKEYSINSLOT`` + ``MIGRATE`` in
batches, then ``CLUSTER SETSLOT … NODE`` on the target, the source and every other
primary. Clients keep working meanwhile: a command on a key already moved is
redirected (``ASK``), one whose keys are split between the two nodes is refused with
``TRYAGAIN`` until the slot is done, and the final ``SETSLOT`` turns both into
``MOVED`` (a blocked read on the source is released with it).

A short ``cluster-node-timeout`` (:data:`NODE_TIMEOUT_MS`) makes failover take a
few seconds, which is what the failover tests and the benchmark measure.

Failure modes: ServerStartError with the reason (no binary, a node that does not
start, a cluster that does not come up within :data:`START_TIMEOUT_S`); every node
started is stopped then.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import redis

from herald.streams.allocator import server_environment
from herald.streams.errors import ServerStartError
from herald.streams.log import get_logger
from herald.streams.server import die_with_parent_hook, find_server_binary, ping

log = get_logger(__name__)

SLOTS = 16384
NODE_TIMEOUT_MS = 2000
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
MIGRATE_BATCH = 100  # keys per MIGRATE while moving a slot
MIGRATE_TIMEOUT_MS = 5000  # a MIGRATE's longest transfer of one batch


@dataclass
class Node:
    """One server of the cluster: its port, folder, process, and the primary it copies."""

    port: int
    folder: Path
    bus_port: int = 0  # the cluster bus (gossip); chosen freely, not port + 10000
    process: subprocess.Popen[bytes] | None = None
    replica_of: int | None = None  # the port of its primary when it started as a replica

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout, decode_responses=True)


@dataclass
class ClusterHandle:
    """A running private cluster; ``url`` names any node (clients discover the rest)."""

    nodes: list[Node]
    binary: str
    appendfsync: str
    die_with_parent: bool = False
    env: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def primaries(self) -> list[Node]:
        """The nodes that are primaries now (after failovers, not as started)."""
        out = []
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            try:
                with node.client() as c:
                    if c.info("replication").get("role") == "master":
                        out.append(node)
            except redis.RedisError:
                continue
        return out

    def kill(self, node: Node) -> None:
        """SIGKILL one node (a crash: nothing flushed)."""
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()

    def restart(self, node: Node) -> None:
        """Start a killed node again on its folder (it rejoins from nodes.conf)."""
        node.process = _spawn(self.binary, node, self.appendfsync, self.env,
                              self.die_with_parent)
        _wait_ping(node)

    def node_id(self, node: Node) -> str:
        with node.client() as c:
            return str(c.execute_command("CLUSTER", "MYID"))

    def slot_owners(self) -> dict[int, Node]:
        """Slot → the primary serving it, as the live primaries see it (CLUSTER SLOTS
        of the first that answers)."""
        by_port = {n.port: n for n in self.nodes}
        for node in self.primaries():
            try:
                with node.client() as c:
                    ranges = c.execute_command("CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            owners: dict[int, Node] = {}
            for first, last, primary, *_replicas in ranges:
                for slot in range(int(first), int(last) + 1):
                    owners[slot] = by_port[int(primary[1])]
            return owners
        raise redis.ConnectionError("no primary answers CLUSTER SLOTS")

    def move_slots(self, slots: Iterable[int], target: Node, *,
                   batch: int = MIGRATE_BATCH) -> int:
        """Move ``slots`` (each from the primary serving it now) to the primary
        ``target``, keys and all, while clients keep working (see the module
        docstring); the number of keys moved. A slot ``target`` serves already is
        skipped.

        Failure modes: a node's error reply (a ``MIGRATE`` that finds the key on the
        target, a node that is not a primary) is raised as :class:`redis.RedisError`
        and leaves that slot half moved (``MIGRATING``/``IMPORTING``): calling again
        with the same slots finishes it.
        """
        owners = self.slot_owners()
        primaries = self.primaries()
        if target not in primaries:
            raise redis.ResponseError(f"node {target.port} is not a primary")
        ids = {n.port: self.node_id(n) for n in primaries}
        target_id = ids[target.port]
        clients = {n.port: n.client(timeout=MIGRATE_TIMEOUT_MS / 1000 + 5) for n in primaries}
        moved = 0
        try:
            for slot in slots:
                source = owners[slot]
                if source.port == target.port:
                    continue
                src, dst = clients[source.port], clients[target.port]
                dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
                src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
                while True:
                    keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
                    if not keys:
                        break
                    src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0,
                                        MIGRATE_TIMEOUT_MS, "KEYS", *keys)
                    moved += len(keys)
                # The target first (it then serves the slot), the source next (its
                # clients get MOVED), then everyone else (gossip would tell them too).
                dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
                src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
                for port, client in clients.items():
                    if port not in (source.port, target.port):
                        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        finally:
            for client in clients.values():
                client.close()
        log.info("slots_moved", target=target.port, keys=moved)
        return moved

    def wait_ok(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until every live node reports ``cluster_state:ok``."""
        _wait_ok([n for n in self.nodes if n.process and n.process.poll() is None], timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            node.process = None
        log.info("cluster_stopped", nodes=len(self.nodes))

    def __enter__(self) -> ClusterHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports of 127.0.0.1 that were free a moment ago (all held
    open together while chosen, so none is handed out twice)."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def _spawn(binary: str, node: Node, appendfsync: str, env: dict[str, str] | None,
           die_with_parent: bool) -> subprocess.Popen[bytes]:
    node.folder.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", "127.0.0.1", "--port", str(node.port), "--dir", str(node.folder),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(node.bus_port),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "yes",
            "--appendfsync", appendfsync, "--save", "", "--daemonize", "no",
            "--protected-mode", "yes", "--logfile", "server.log"]
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, start_new_session=True,
        preexec_fn=die_with_parent_hook if die_with_parent and sys.platform == "linux" else None)


def _wait_ping(node: Node, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process is not None and node.process.poll() is not None:
            raise ServerStartError(f"cluster node {node.port} exited at start (see "
                                   f"{node.folder / 'server.log'})")
        if ping(node.url, timeout=0.2):
            return
        time.sleep(0.05)
    raise ServerStartError(f"cluster node {node.port} does not answer")


def _wait_ok(nodes: list[Node], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            states = []
            for node in nodes:
                with node.client() as c:
                    states.append(c.execute_command("CLUSTER", "INFO"))
            if all("cluster_state:ok" in s for s in states):
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise ServerStartError("the cluster did not reach cluster_state:ok in time")
        time.sleep(0.1)


def start_cluster(folder: Path, *, masters: int = 3, replicas: int = 1,
                  appendfsync: str = "everysec", die_with_parent: bool = False,
                  allocator: str = "auto") -> ClusterHandle:
    """Start a cluster in ``folder`` (see the module docstring)."""
    binary = find_server_binary()
    env, _malloc = server_environment(binary, allocator)
    folder = folder.resolve()
    count = masters * (1 + replicas)
    ports = free_ports(2 * count)
    nodes = [Node(port=ports[2 * i], folder=folder / f"node{i}", bus_port=ports[2 * i + 1])
             for i in range(count)]
    handle = ClusterHandle(nodes, binary, appendfsync, die_with_parent, env)
    try:
        for node in nodes:
            node.process = _spawn(binary, node, appendfsync, env, die_with_parent)
        for node in nodes:
            _wait_ping(node)
        primaries, secondaries = nodes[:masters], nodes[masters:]
        step = SLOTS // masters
        for i, node in enumerate(primaries):
            first, last = i * step, (SLOTS - 1 if i == masters - 1 else (i + 1) * step - 1)
            with node.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with nodes[0].client() as c:
            for node in nodes[1:]:
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        _wait_known(nodes)
        ids = {}
        for node in primaries:
            with node.client() as c:
                ids[node.port] = c.execute_command("CLUSTER", "MYID")
        for i, node in enumerate(secondaries):
            primary = primaries[i % masters]
            node.replica_of = primary.port
            with node.client() as c:
                c.execute_command("CLUSTER", "REPLICATE", ids[primary.port])
        _wait_ok(nodes, START_TIMEOUT_S)
        _wait_synced(secondaries)
    except BaseException:
        handle.stop()
        raise
    log.info("cluster_started", nodes=[n.port for n in nodes], masters=masters,
             replicas=replicas, appendfsync=appendfsync)
    return handle


def _wait_known(nodes: list[Node]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        counts = []
        for node in nodes:
            with node.client() as c:
                counts.append(len(c.execute_command("CLUSTER", "NODES").strip().splitlines()))
        if all(n == len(nodes) for n in counts):
            return
        time.sleep(0.1)
    raise ServerStartError("the cluster nodes did not all meet in time")


def _wait_synced(replicas: list[Node]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        done = 0
        for node in replicas:
            with node.client() as c:
                info = c.info("replication")
                done += info.get("role") == "slave" and info.get("master_link_status") == "up"
        if done == len(replicas):
            return
        time.sleep(0.1)
    raise ServerStartError("the replicas did not sync in time")
