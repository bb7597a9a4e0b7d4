"""A run read from the projection, and the inputs its conditions see as of a position.

The ``workflows`` role reads a run only once the projector has applied the partition
past the entry it handles and past every decision it appended itself, so the hash
holds every earlier decision of the run. What happened to the run's notifications
(read, delivered, failed) is kept with the position it happened at
(consumers/workflows/projection.py), and :meth:`Run.inputs` counts only what happened
at or before the position the decision is taken as of: live and any later reading of
the log take the same decision from the same entries.

Failure modes: Redis errors propagate; a run whose sealed data cannot be opened (the
user was erased) reads with empty data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.streams import codec, positions
from herald.streams.connection import text
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.sealing import open_blob

MARKS = ("read", "delivered", "failed")


@dataclass(slots=True)
class Run:
    """One run's state (a mutable copy: the role updates it as it decides)."""

    id: str
    fields: dict[str, str]
    data: dict[str, Any]
    notes: dict[str, dict[str, str]] = field(default_factory=dict)  # nid → marks

    @property
    def user(self) -> str:
        return self.fields["u"]

    @property
    def key(self) -> str:
        return self.fields["k"]

    @property
    def version(self) -> int:
        return int(self.fields["v"])

    @property
    def running(self) -> bool:
        return self.fields.get("st") == "running"

    @property
    def at(self) -> int:
        return int(self.fields.get("at") or 0)

    @property
    def parked(self) -> str:
        """``""``, ``delay`` or ``wait``."""
        return self.fields.get("wt", "")

    @property
    def until(self) -> int | None:
        value = self.fields.get("un")
        return int(value) if value else None

    def started_before(self, position: str) -> bool:
        return self.fields["tp"] < positions.padded(position)

    def step_position(self, step: str) -> str | None:
        """Padded position of the step's last decision (None: none yet)."""
        return self.fields.get(f"p:{step}")

    def record(self, step: str, index: int, outcome: str, nid: str | None = None,
               until: int | None = None) -> None:
        """What the projection will write for a decision just appended (so decisions
        taken in the same batch see it)."""
        self.fields[f"o:{step}"] = outcome
        self.fields.setdefault(f"p:{step}", "~")  # decided: after every position read
        if outcome in ("delayed", "waiting"):
            self.fields.update(at=str(index), wt="delay" if outcome == "delayed" else "wait",
                               un=str(until))
        else:
            self.fields.update(at=str(index + 1), wt="", un="")
        if outcome == "matched":
            self.fields[f"m:{step}"] = "~"
        if nid:
            self.fields[f"n:{step}"] = nid
            self.notes.setdefault(nid, {})

    def inputs(self, step_ids: Sequence[str], position: str,
               recipient: Mapping[str, Any]) -> dict[str, Any]:
        """The variables of a condition decided as of ``position``."""
        padded = positions.padded(position)
        steps: dict[str, Any] = {}
        for sid in step_ids:
            status = self.fields.get(f"o:{sid}", "pending")
            nid = self.fields.get(f"n:{sid}")
            marks = self.notes.get(nid, {}) if nid else {}
            steps[sid] = {"status": status, "matched": f"m:{sid}" in self.fields,
                          **{m: m in marks and marks[m] <= padded for m in MARKS}}
            if status == "sent" and steps[sid]["delivered"]:
                steps[sid]["status"] = "delivered"
            elif status == "sent" and steps[sid]["failed"]:
                steps[sid]["status"] = "failed"
        return {"data": self.data, "recipient": dict(recipient), "steps": steps}


async def load_runs(redis: Any, keys: Keys, data_keys: KeyStore, partition: int, ns: str,
                    run_ids: Sequence[str]) -> dict[str, Run]:
    """The runs (with their notifications' marks) that exist among ``run_ids``."""
    if not run_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for rid in run_ids:
            pipe.hgetall(keys.workflow_run(partition, rid, ns))
        raw = await pipe.execute()
    found = [(rid, {text(k): (v if text(k) in ("s", "d") else text(v)) for k, v in doc.items()})
             for rid, doc in zip(run_ids, raw, strict=True) if doc]
    datas = await asyncio.gather(*(_data(data_keys, fields) for _, fields in found))
    runs = {rid: Run(rid, fields, data) for (rid, fields), data in zip(found, datas,
                                                                       strict=True)}
    nids = [(rid, v) for rid, run in runs.items() for k, v in run.fields.items()
            if k.startswith("n:")]
    if nids:
        async with redis.pipeline(transaction=False) as pipe:
            for _rid, nid in nids:
                pipe.hgetall(keys.workflow_note(partition, str(nid), ns))
            notes = await pipe.execute()
        for (rid, nid), note in zip(nids, notes, strict=True):
            runs[rid].notes[str(nid)] = {text(k): text(v) for k, v in (note or {}).items()}
    for run in runs.values():  # sealed and packed values were only needed for the data
        run.fields.pop("s", None)
        run.fields.pop("d", None)
    return runs


async def _data(data_keys: KeyStore, fields: dict[str, Any]) -> dict[str, Any]:
    if fields.get("s"):
        opened = await open_blob(data_keys, text(fields["u"]), fields["s"])
        return dict((opened or {}).get("data") or {})
    if fields.get("d"):
        value = codec.unpack_value(fields["d"])
        return dict(value) if isinstance(value, dict) else {}
    return {}
