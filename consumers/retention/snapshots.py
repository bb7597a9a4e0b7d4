"""Snapshot files: one partition's projection as of one position, in archive storage.

A snapshot is a container of kind ``snapshot`` (streams/archive/container.py:
versioned, checksummed, compressed) whose records are the partition's projection
keys (consumers/retention/image.py) and whose header says what it is: ``partition``,
``partitions`` (the deployment's count: users map to partitions by it), ``position``
(the checkpoint it is an image of), ``layout`` (consumers/projection/base.py
``LAYOUT``), ``keys`` and ``created_at``. Names sort in log order:
``snapshots/p0007/<padded position>.snap``.

Guarantees: a snapshot is written whole (storage puts are atomic) and read back and
checked before it counts; reading one of another layout or partition count raises
:class:`RetentionError` saying which and what to do; a corrupt one raises the
archive's error naming it. Old snapshots are pruned to ``HERALD_SNAPSHOT_KEEP``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from herald.consumers.errors import RetentionError
from herald.consumers.projection.base import LAYOUT
from herald.consumers.retention.image import Record
from herald.streams.archive import Storage, pack_container, unpack_container
from herald.streams.positions import is_position, padded, parse, unpadded

KIND = "snapshot"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One snapshot file: its partition, the position it images, and its name."""

    partition: int
    position: str
    name: str

    @classmethod
    def named(cls, partition: int, position: str) -> Snapshot:
        return cls(partition, position, f"{folder(partition)}{padded(position)}.snap")


def folder(partition: int) -> str:
    return f"snapshots/p{partition:04d}/"


class SnapshotStore:
    """The snapshots of one deployment, in its archive storage."""

    def __init__(self, storage: Storage, partitions: int) -> None:
        self.storage = storage
        self.partitions = partitions

    async def all(self, partition: int) -> list[Snapshot]:
        """Every snapshot of the partition, oldest first."""
        out = []
        for name in await self.storage.list(folder(partition)):
            stem = name.rpartition("/")[2].removesuffix(".snap")
            if name.endswith(".snap") and is_position(unpadded(stem)):
                out.append(Snapshot(partition, unpadded(stem), name))
        return sorted(out, key=lambda s: parse(s.position))

    async def latest(self, partition: int, at_or_before: str | None = None) -> Snapshot | None:
        """The newest snapshot (at or before a position, when given), or None."""
        found = await self.all(partition)
        if at_or_before is not None:
            bound = parse(at_or_before)
            found = [s for s in found if parse(s.position) <= bound]
        return found[-1] if found else None

    async def write(self, partition: int, position: str, records: list[Record]) -> Snapshot:
        """Write the image of ``partition`` at ``position``, read it back, check it."""
        snapshot = Snapshot.named(partition, position)
        header = {"partition": partition, "partitions": self.partitions, "position": position,
                  "layout": LAYOUT, "keys": len(records), "created_at": int(time.time() * 1000)}
        await self.storage.put(snapshot.name, pack_container(KIND, header, records))
        await self.read(snapshot)  # verified after write: the checksum and the header
        return snapshot

    async def read(self, snapshot: Snapshot) -> list[Record]:
        """The records of a snapshot, after every check (see the module docstring)."""
        data = await self.storage.get(snapshot.name)
        container = unpack_container(data, kind=KIND, name=snapshot.name)
        header: dict[str, Any] = container.header
        if header.get("layout") != LAYOUT:
            raise RetentionError(
                f"{snapshot.name} holds projection layout {header.get('layout')!r}; this "
                f"Herald reads layout {LAYOUT}. Rebuild from the log with `herald replay "
                "--from-start` (it does not need snapshots), then take a new snapshot")
        if header.get("partitions") != self.partitions or header.get("partition") != \
                snapshot.partition or header.get("position") != snapshot.position:
            raise RetentionError(
                f"{snapshot.name} is partition {header.get('partition')} of "
                f"{header.get('partitions')} at {header.get('position')}, not partition "
                f"{snapshot.partition} of {self.partitions} at {snapshot.position}")
        return container.records

    async def prune(self, partition: int, keep: int) -> list[Snapshot]:
        """Delete all but the newest ``keep`` snapshots of the partition; the deleted."""
        old = (await self.all(partition))[:-keep] if keep > 0 else []
        for snapshot in old:
            await self.storage.delete(snapshot.name)
        return old
