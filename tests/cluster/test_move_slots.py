"""ClusterHandle.move_slots: live resharding moves keys, groups and TTLs, and clients
writing meanwhile lose nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from herald.streams.cluster_server import ClusterHandle, Node, start_cluster

TAG = "{p03}"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterHandle]:
    handle = start_cluster(tmp_path / "cluster", masters=2, replicas=0, die_with_parent=True)
    try:
        yield handle
    finally:
        handle.stop()


def _count(node_client: redis.Redis, slot: int) -> int:
    return int(node_client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))


def test_a_slot_moves_with_its_keys_while_a_client_writes(
        cluster: ClusterHandle, tmp_path: Path) -> None:
    client = redis.RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        slot = client.keyslot(TAG)
        owners = cluster.slot_owners()
        source = owners[slot]
        [target] = [n for n in cluster.primaries() if n is not source]
        stream = f"{TAG}:log"
        for i in range(250):  # more keys than one MIGRATE batch
            client.set(f"{TAG}:k{i}", i)
        client.set(f"{TAG}:ttl", "x", ex=600)
        client.xgroup_create(stream, "g", id="0", mkstream=True)
        client.xadd(stream, {"e": "1"})
        client.xreadgroup("g", "c1", {stream: ">"})  # one entry pending for c1
        written = 0
        done = threading.Event()

        def writer() -> None:  # single-key writes all through the move (ASK/MOVED)
            nonlocal written
            while not done.is_set() and written < 5000:
                client.incr(f"{TAG}:counter")
                written += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            moved = cluster.move_slots([slot], target)
        finally:
            done.set()
            thread.join(30)
        # 250 + the TTL key + the stream, and the counter unless the writer created it
        # on the target (ASK) before the slot was emptied
        assert moved in (252, 253)
        with source.client() as src, target.client() as dst:
            assert _count(src, slot) == 0 and _count(dst, slot) == 253
        assert cluster.slot_owners()[slot] is target
        assert int(client.get(f"{TAG}:counter")) == written > 0
        assert 0 < client.ttl(f"{TAG}:ttl") <= 600
        assert client.xpending(stream, "g")["pending"] == 1  # the group came along
        assert [client.get(f"{TAG}:k{i}") for i in (0, 249)] == ["0", "249"]
        assert cluster.move_slots([slot], target) == 0  # already there: nothing to do
        with pytest.raises(redis.ResponseError, match="not a primary"):
            cluster.move_slots([slot], Node(port=1, folder=tmp_path))
    finally:
        client.close()

