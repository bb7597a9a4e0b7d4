"""``herald workflow simulate``: a candidate version against the real past, sending nothing.

Reads every partition's log between two times (``XRANGE`` in chunks of
:data:`CHUNK`; only what is still in Redis — entries already archived are not read,
and the report says so), and replays, per partition in log order, the triggers of the
workflow in that period through the candidate definition with the same plan the live
role follows (consumers/workflows/plan.py): the users' reads and deliveries of the
notifications the live runs sent, business events, cancels, and the candidate's own
timers (fired at their due time, between the entries around it). Everything is kept in
this process's memory: no key is written, nothing is appended, nothing is sent.

A candidate's step is taken to be read (delivered, failed) when the live run's step of
the same id was: the user's behaviour is the recorded one. The report counts, per
channel, the sends the candidate would have made and those the live runs made (of the
same triggers, up to the end of the period), and lists a sample of the runs whose sent
steps differ.

Failure modes: Redis errors propagate; an entry that does not decode or open is
skipped and counted (``unreadable``).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from herald.consumers.workflows.plan import Cause, Decide, Send, plan
from herald.consumers.workflows.state import Run
from herald.streams import codec, positions, sealing
from herald.streams.crypto import CryptoError
from herald.streams.errors import CodecError
from herald.streams.events import (
    BusinessEventReceived,
    DeliveryFailed,
    DeliverySucceeded,
    Envelope,
    NotificationRead,
    ScheduleCancelled,
    WorkflowStepDecided,
    WorkflowTriggered,
)
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.settings import Settings

CHUNK = 5000
SAMPLE = 10
_TYPES = (WorkflowTriggered.TYPE, WorkflowStepDecided.TYPE, NotificationRead.TYPE,
          DeliverySucceeded.TYPE, DeliveryFailed.TYPE, BusinessEventReceived.TYPE,
          "schedule.cancelled")
_MARKS = tuple(t.encode() for t in _TYPES)


@dataclass(slots=True)
class Report:
    """What a simulation found (``as_dict`` is what ``--json`` prints)."""

    runs: int = 0
    entries: int = 0
    unreadable: int = 0
    trimmed_partitions: list[int] = field(default_factory=list)
    candidate: Counter[str] = field(default_factory=Counter)
    live: Counter[str] = field(default_factory=Counter)
    differing: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        channels = sorted(set(self.candidate) | set(self.live))
        return {"runs": self.runs, "entries": self.entries, "unreadable": self.unreadable,
                "trimmed_partitions": self.trimmed_partitions,
                "channels": {ch: {"candidate": self.candidate[ch], "live": self.live[ch]}
                             for ch in channels},
                "differing_runs": self.differing, "sample": self.sample,
                "seconds": round(self.seconds, 3),
                "events_per_second": round(self.entries / self.seconds) if self.seconds else 0}


@dataclass(slots=True)
class _Sim:
    run: Run
    live_version: int
    live_sent: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)


class Simulator:
    """Replays one period of the log through a candidate definition (module doc)."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.data_keys = KeyStore(redis, settings)

    async def run(self, key: str, candidate: Mapping[str, Any],
                  live_definitions: Mapping[int, Mapping[str, Any]], start_ms: int,
                  end_ms: int) -> Report:
        """Simulate ``candidate`` for the triggers of ``key`` in ``[start_ms, end_ms]``;
        ``live_definitions`` are the registered versions (version → definition)."""
        began = time.perf_counter()
        report = Report()
        for p in range(self.settings.partitions):
            entries = await self._entries(p, start_ms, end_ms, report)
            self._partition(key, candidate, live_definitions, entries, end_ms, report)
        report.seconds = time.perf_counter() - began
        return report

    async def _entries(self, p: int, start_ms: int, end_ms: int,
                       report: Report) -> list[tuple[str, Envelope]]:
        stream = self.keys.stream(p)
        try:
            info = await self.redis.xinfo_stream(stream)
        except ResponseError:  # no such stream: nothing happened there
            return []
        deleted = info.get("max-deleted-entry-id") or b"0-0"
        deleted = deleted.decode() if isinstance(deleted, bytes) else str(deleted)
        if positions.parse(deleted)[0] >= start_ms:
            report.trimmed_partitions.append(p)  # the period's start was trimmed (archived)
        out: list[tuple[str, Envelope]] = []
        low: str = f"{start_ms}-0"
        while True:
            rows = await self.redis.xrange(stream, low, f"{end_ms}-18446744073709551615",
                                           count=CHUNK)
            for raw_pos, fields in rows:
                report.entries += 1
                raw = fields.get(b"e") if isinstance(fields, dict) else None
                if raw is None or not any(m in raw for m in _MARKS):
                    continue
                try:
                    env = codec.decode(raw)
                    if env.sealed is not None and env.type in (WorkflowTriggered.TYPE,
                                                                BusinessEventReceived.TYPE):
                        env = await sealing.opened(self.data_keys, env) or env
                except (CodecError, CryptoError):
                    report.unreadable += 1
                    continue
                out.append((raw_pos.decode(), env))
            if len(rows) < CHUNK:
                return out
            low = "(" + rows[-1][0].decode()

    def _partition(self, key: str, candidate: Mapping[str, Any],
                   live: Mapping[int, Mapping[str, Any]], entries: list[tuple[str, Envelope]],
                   end_ms: int, report: Report) -> None:
        sims: dict[str, _Sim] = {}
        live_nid: dict[tuple[str, str], str] = {}  # (run, step) → the live notification
        for _pos, env in entries:  # first pass: what the live runs sent
            p = env.payload
            if isinstance(p, WorkflowStepDecided) and p.outcome == "sent" and p.notification_id:
                live_nid[(p.run_id, p.step)] = p.notification_id
        notes: dict[str, dict[str, str]] = defaultdict(dict)
        timers: list[tuple[int, str, int]] = []  # (due, run, index)
        for pos, env in entries:
            when = positions.parse(pos)[0]
            while timers and timers[0][0] <= when:
                self._fire(heapq.heappop(timers), sims, candidate, live_nid, timers, report)
            self._entry(pos, env, key, candidate, live, sims, live_nid, notes, timers, report)
        while timers and timers[0][0] <= end_ms:
            self._fire(heapq.heappop(timers), sims, candidate, live_nid, timers, report)
        for rid, sim in sims.items():
            if sim.sent != sim.live_sent:
                report.differing += 1
                if len(report.sample) < SAMPLE:
                    report.sample.append({"run_id": rid, "user": sim.run.user,
                                          "live": sim.live_sent, "candidate": sim.sent})

    def _entry(self, pos: str, env: Envelope, key: str, candidate: Mapping[str, Any],
               live: Mapping[int, Mapping[str, Any]], sims: dict[str, _Sim],
               live_nid: dict[tuple[str, str], str], notes: dict[str, dict[str, str]],
               timers: list[tuple[int, str, int]], report: Report) -> None:
        p = env.payload
        padded = positions.padded(pos)
        if isinstance(p, WorkflowTriggered):
            if p.workflow_key != key:
                return
            fields = {"k": key, "v": "0", "u": env.user, "tp": padded, "st": "running",
                      "at": "0", "wt": "", "ck": p.cancel_key or ""}
            run = Run(env.id, fields, dict(p.data), notes)  # notes shared: keyed by live nid
            sims[env.id] = _Sim(run, p.version)
            report.runs += 1
            self._act(sims[env.id], candidate, Cause("trigger", pos, env.time), live_nid,
                      timers, report)
        elif isinstance(p, WorkflowStepDecided):
            sim = sims.get(p.run_id)
            if sim is not None and p.outcome == "sent":
                sim.live_sent.append(p.step)
                definition = live.get(sim.live_version)
                step = next((s for s in (definition or {}).get("steps", [])
                             if s.get("id") == p.step), None)
                for ch in (step or {}).get("channels", []):
                    report.live[ch] += 1
        elif isinstance(p, NotificationRead | DeliverySucceeded | DeliveryFailed):
            mark = "read" if isinstance(p, NotificationRead) else "delivered" \
                if isinstance(p, DeliverySucceeded) else "failed" if p.final else ""
            if mark:
                notes[p.notification_id].setdefault(mark, padded)
        elif isinstance(p, BusinessEventReceived):
            cause = Cause("business", pos, env.time, name=p.name, data=p.data,
                          event_id=env.id)
            for sim in [s for s in sims.values() if s.run.user == env.user]:
                self._act(sim, candidate, cause, live_nid, timers, report)
        elif isinstance(p, ScheduleCancelled) and p.notification_id is None and p.cancel_key:
            cause = Cause("cancel", pos, env.time, name=p.cancel_key)
            for sim in [s for s in sims.values() if s.run.user == env.user]:
                self._act(sim, candidate, cause, live_nid, timers, report)

    def _fire(self, timer: tuple[int, str, int], sims: dict[str, _Sim],
              candidate: Mapping[str, Any], live_nid: dict[tuple[str, str], str],
              timers: list[tuple[int, str, int]], report: Report) -> None:
        due, rid, index = timer
        cause = Cause("timer", f"{due}-0", due, index=index, until=due)
        self._act(sims[rid], candidate, cause, live_nid, timers, report)

    def _act(self, sim: _Sim, candidate: Mapping[str, Any], cause: Cause,
             live_nid: dict[tuple[str, str], str], timers: list[tuple[int, str, int]],
             report: Report) -> None:
        run = sim.run
        if cause.kind != "trigger" and not run.started_before(cause.position):
            return
        for action in plan(run, candidate, cause, {"id": run.user, "locale": ""}):
            if isinstance(action, Send):
                sid = str(action.step["id"])
                sim.sent.append(sid)
                for ch in action.step.get("channels", []):
                    report.candidate[ch] += 1
                nid = live_nid.get((run.id, sid))  # the user's recorded behaviour
                run.fields[f"n:{sid}"] = nid or f"sim:{run.id}:{sid}"
            elif isinstance(action, Decide) and action.until is not None:
                heapq.heappush(timers, (action.until, run.id, action.index))
        # decisions take the position "~" in Run.record: mark them as of the cause instead
        for name, value in list(run.fields.items()):
            if name.startswith(("p:", "m:")) and value == "~":
                run.fields[name] = positions.padded(cause.position)
