"""A run's timeline from the log alone: ``herald explain`` and ``GET /v1/workflow-runs/{id}``.

The projection keeps, per run, the positions of its events (``Keys.workflow_run_log``);
this reads those entries back from the partition stream and opens their sealed fields,
so every line says when, what and why: the step, its outcome, the condition, the
inputs it read and its value, and the log position it was decided as of. A
notification a run sent explains its run (``Keys.workflow_note``).

Failure modes: None for an id that is neither a run nor a notification a run sent (or
whose entries were trimmed from Redis into the archive: the run's state still answers,
the lines that are gone are left out and counted in ``missing``).
"""

from __future__ import annotations

from typing import Any

from herald.consumers.projection.queries import iso
from herald.consumers.projection.views import Views
from herald.streams import codec, positions, sealing
from herald.streams.connection import text
from herald.streams.ids import is_id, partition_of
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.settings import Settings

MAX_LINES = 500


class Explainer:
    """Reads runs' timelines of one prefix."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.views = Views(redis, settings)
        self.data_keys = KeyStore(redis, settings)

    async def run_of(self, some_id: str) -> str | None:
        """The run ``some_id`` names: itself, or the run that sent that notification."""
        if not is_id(some_id):
            return None
        p = partition_of(some_id) % self.settings.partitions
        ns = await self.views.ns(p)
        if await self.redis.exists(self.keys.workflow_run(p, some_id, ns)):
            return some_id
        run = await self.redis.hget(self.keys.workflow_note(p, some_id, ns), "run")
        return None if run is None else text(run)

    async def explain(self, some_id: str) -> dict[str, Any] | None:
        run_id = await self.run_of(some_id)
        if run_id is None:
            return None
        p = partition_of(run_id) % self.settings.partitions
        ns = await self.views.ns(p)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.workflow_run(p, run_id, ns))
            pipe.zrange(self.keys.workflow_run_log(p, run_id, ns), 0, MAX_LINES - 1)
            state, padded = await pipe.execute()
        fields = {text(k): v for k, v in state.items()}
        wanted = [positions.unpadded(text(m)) for m in padded]
        async with self.redis.pipeline(transaction=False) as pipe:
            for pos in wanted:
                pipe.xrange(self.keys.stream(p), pos, pos)
            rows = await pipe.execute()
        lines, missing = [], 0
        for pos, found in zip(wanted, rows, strict=True):
            if not found:
                missing += 1
                continue
            env = codec.decode(found[0][1][b"e"])
            opened = await sealing.opened(self.data_keys, env) or env
            lines.append(_line(pos, opened))
        return {
            "run_id": run_id, "workflow": text(fields.get("k", b"")),
            "version": int(text(fields.get("v", b"0"))), "user": text(fields.get("u", b"")),
            "status": text(fields.get("st", b"")), "cancel_key": text(fields.get("ck", b""))
            or None, "timeline": lines, "missing": missing,
        }


def _line(position: str, env: Any) -> dict[str, Any]:
    """One event of the run as a timeline line."""
    p = env.payload
    line: dict[str, Any] = {"position": position, "time": iso(env.time), "event": env.type}
    if env.type == "workflow.triggered":
        line.update(what="started", data=p.data)
    elif env.type == "workflow.step_decided":
        line.update(step=p.step, index=p.index, what=p.outcome, decided_as_of=p.at)
        if p.condition is not None:
            line.update(condition=p.condition, result=p.result, inputs=p.data)
        if p.notification_id:
            line["notification_id"] = p.notification_id
        if p.until is not None:
            line["until"] = iso(p.until)
        if p.detail:
            line["detail"] = p.detail
    elif env.type == "workflow.run_ended":
        line.update(what=p.outcome, decided_as_of=p.at, detail=p.detail)
    elif env.type == "workflow.timer_fired":
        line.update(what="timer_fired", index=p.index, until=iso(p.until))
    return line


def why(line: dict[str, Any]) -> str:
    """One line of ``herald explain``'s text."""
    head = f"{line['time']}  {line['position']:<22} "
    what = line.get("what", line["event"])
    if "step" in line:
        text_ = f"{line['step']} (#{line['index']}) {what}"
        if "condition" in line:
            text_ += f"  because {line['condition']!r} was {str(line['result']).lower()}"
            text_ += f" as of {line['decided_as_of']}"
        if "until" in line:
            text_ += f"  until {line['until']}"
        if "detail" in line:
            text_ += f"  ({line['detail']})"
        return head + text_
    if line["event"] == "workflow.run_ended":
        return head + f"run {what}" + (f": {line['detail']}" if line.get("detail") else "")
    return head + str(what)
