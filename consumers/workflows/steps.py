"""What a run does about one entry: the decisions, built and appended in order.

:meth:`Decider.decide` takes the handled entry (its position and event), the runs it
may concern (read as of that position: consumers/workflows/state.py) and appends, per
run, the events of what happens next (consumers/workflows/engine.py says when).
Time in a decision is log time — the handled event's ``time`` — never this machine's
clock, so a delay's end is the same whenever the entry is handled.

Idempotency keys (``wfn:`` a step's notification, ``wfs:`` a step's decision with its
outcome, ``wfe:`` the run's end) name the run and the step: an entry handled again
appends nothing twice, and whichever of a match or a timeout was appended first is the
only one.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from herald.consumers.templates.render import Renderer, TemplateError
from herald.consumers.templates.store import TemplateStore
from herald.consumers.workflows.definition import (
    content_definition,
    duration_ms,
    time_value_ms,
)
from herald.consumers.workflows.expressions import (
    Condition,
    ConditionError,
    compile_condition,
)
from herald.consumers.workflows.projection import timer_token
from herald.consumers.workflows.state import Run
from herald.consumers.workflows.store import WorkflowStore
from herald.streams import positions
from herald.streams.connection import text
from herald.streams.events import (
    CRITICAL,
    BusinessEventReceived,
    DigestItemAdded,
    Envelope,
    NotificationCreated,
    Payload,
    ScheduleCancelled,
    WorkflowRunEnded,
    WorkflowStepDecided,
    WorkflowTimerFired,
    WorkflowTriggered,
)
from herald.streams.keys import Keys
from herald.streams.producer import Producer
from herald.streams.settings import Settings
from herald.streams.validation import KEY_RE

KEY_MAX = 200
MAX_TIME_MS = 10**15  # what a schedule entry holds (consumers/workflows/projection.py)


def idem(*parts: Any) -> str:
    """An idempotency key of the parts (hashed when it would be too long)."""
    key = ":".join(str(p) for p in parts)
    if len(key) <= KEY_MAX and KEY_RE.match(key):
        return key
    return f"{parts[0]}:h:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class RunFailed(Exception):
    """A run cannot go on (its definition is gone, a condition does not evaluate)."""


class Decider:
    """Builds and appends the decisions of the ``workflows`` role."""

    def __init__(self, settings: Settings, redis: Any, producer: Producer) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = Keys(settings.prefix)
        self.producer = producer
        self.definitions = WorkflowStore(redis, settings)
        self.templates = TemplateStore(redis, settings)
        self.renderer = Renderer()

    async def decide(self, p: int, ns: str, position: str, env: Envelope,
                     runs: dict[str, Run]) -> list[str]:
        """Append what ``env`` (at ``position``) makes the runs do; the positions appended."""
        out: list[str] = []
        payload = env.payload
        starts = isinstance(payload, WorkflowTriggered)
        for run in runs.values():
            # a run triggered after the entry (its trigger is later in the log) is not
            # concerned by it; the trigger itself is the one entry at the run's position
            if not run.running or not (starts or run.started_before(position)):
                continue
            try:
                await self._one(p, ns, position, env, run, out)
            except RunFailed as exc:
                await self._end(run, "failed", position, env, out, str(exc))
        return out

    async def _one(self, p: int, ns: str, position: str, env: Envelope, run: Run,
                   out: list[str]) -> None:
        payload = env.payload
        found = await self.definitions.get(run.key, run.version)
        if found is None:
            raise RunFailed(f"workflow {run.key!r} version {run.version} is not registered")
        steps: list[dict[str, Any]] = found.definition["steps"]
        if isinstance(payload, WorkflowTriggered):
            if not run.parked:
                await self._advance(p, ns, position, env, run, steps, out)
        elif isinstance(payload, WorkflowTimerFired):
            if run.parked and run.at == payload.index and run.until == payload.until:
                step = steps[run.at]
                outcome = "elapsed" if run.parked == "delay" else "timed_out"
                await self._step(run, step, run.at, outcome, position, env, out)
                await self._advance(p, ns, position, env, run, steps, out)
        elif isinstance(payload, ScheduleCancelled):
            if payload.notification_id is None and payload.cancel_key and \
                    run.fields.get("ck") == payload.cancel_key:
                await self._end(run, "cancelled", position, env, out,
                                f"cancel key {payload.cancel_key!r}")
        elif isinstance(payload, BusinessEventReceived):
            await self._business(p, ns, position, env, run, found.definition, out)

    async def _business(self, p: int, ns: str, position: str, env: Envelope, run: Run,
                        definition: Mapping[str, Any], out: list[str]) -> None:
        event: BusinessEventReceived = env.payload  # type: ignore[assignment]
        for rule in definition.get("cancel_on") or []:
            if rule["event"] == event.name and self._matches(rule.get("match"), run, event):
                await self._end(run, "cancelled", position, env, out,
                                f"cancel_on {event.name}")
                return
        steps = definition["steps"]
        if run.parked != "wait" or run.at >= len(steps):
            return
        step = steps[run.at]
        began = run.step_position(step["id"])
        if step.get("event") != event.name or began is None or not began < \
                positions.padded(position) or not self._matches(step.get("match"), run, event):
            return
        await self._step(run, step, run.at, "matched", position, env, out,
                         detail=f"{event.name} {env.id}")
        if step.get("on_match") == "stop":
            await self._end(run, "stopped", position, env, out, f"{step['id']} matched")
            return
        await self._advance(p, ns, position, env, run, steps, out)

    @staticmethod
    def _matches(field: str | None, run: Run, event: BusinessEventReceived) -> bool:
        if field is None:
            return True
        return field in run.data and event.data.get(field) == run.data[field]

    async def _advance(self, p: int, ns: str, position: str, env: Envelope, run: Run,
                       steps: list[dict[str, Any]], out: list[str]) -> None:
        """Run steps from ``run.at`` until one parks the run or the steps end."""
        ids = [s["id"] for s in steps]
        recipient = {"id": run.user, "locale": await self._locale(p, ns, run.user)}
        while run.at < len(steps):
            i = run.at
            step = steps[i]
            condition, result, inputs = step.get("if"), None, {}
            if condition is not None:
                inputs = run.inputs(ids[:i], position, recipient)
                try:
                    result = _compiled(condition, tuple(ids[:i])).evaluate(inputs)
                except ConditionError as exc:
                    raise RunFailed(f"steps.{i}.if {exc}") from exc
                if not result:
                    await self._step(run, step, i, "skipped", position, env, out,
                                     condition=condition, result=False, inputs=inputs)
                    continue
            kind = step["type"]
            if kind in ("send", "digest"):
                nid = await self._send(run, step, i, env, recipient["locale"], out)
                await self._step(run, step, i, "sent", position, env, out, nid=nid,
                                 condition=condition, result=result, inputs=inputs)
            elif kind == "delay":
                until = self._delay_end(step, run, env)
                await self._step(run, step, i, "delayed", position, env, out, until=until,
                                 condition=condition, result=result, inputs=inputs)
                return
            else:  # wait_for
                until = env.time + duration_ms(step["timeout"])
                await self._step(run, step, i, "waiting", position, env, out, until=until,
                                 condition=condition, result=result, inputs=inputs,
                                 detail=step["event"])
                return
        await self._end(run, "completed", position, env, out, "")

    @staticmethod
    def _delay_end(step: Mapping[str, Any], run: Run, env: Envelope) -> int:
        if "for" in step:
            return env.time + duration_ms(step["for"])
        field = step["until"]
        try:
            base = time_value_ms(run.data[field])
        except (KeyError, ValueError, OverflowError) as exc:
            raise RunFailed(f"data.{field} is not a date-time: {exc}") from exc
        end = max(0, base + duration_ms(step.get("offset", "0s")))
        if end >= MAX_TIME_MS:
            raise RunFailed(f"data.{field} is too far in the future")
        return end

    async def _locale(self, p: int, ns: str, user: str) -> str:
        locale, contact = await self.redis.hmget(self.keys.profile(p, user, ns), "locale",
                                                 "c:locale")
        chosen = contact if contact is not None else locale
        return text(chosen) if chosen is not None else ""

    async def _send(self, run: Run, step: Mapping[str, Any], i: int, env: Envelope,
                    locale: str, out: list[str]) -> str:
        """Append the step's notification; its id (the first append's, when repeated)."""
        ref, version = None, 0
        if "template" in step:
            found = await self.templates.get(step["template"])
            if found is None:
                raise RunFailed(f"template {step['template']!r} is not registered")
            definition, version = found.definition, found.version
            defaults = {n: definition[n] for n in ("category",) if n in definition}
        else:
            definition, defaults = content_definition(step), {}
        try:
            rendered = self.renderer.render(definition, locale or None, run.data, clip=True)
        except TemplateError as exc:
            raise RunFailed(f"steps.{i} does not render: {exc}") from exc
        if "template" in step:
            ref = {"id": step["template"], "version": version, "locale": rendered.locale}
        channels = tuple(step["channels"])
        common: dict[str, Any] = {
            "title": rendered.title, "body": rendered.body,
            "category": step.get("category", defaults.get("category", "workflow")),
            "data": {**run.data, "workflow": {"key": run.key, "run": run.id, "step": step["id"]}},
            "channels": channels, "priority": CRITICAL if step.get("priority") == CRITICAL
            else None, "inbox": None if "in_app" in channels else False, "template": ref,
            "variants": rendered.variants or None}
        payload: Payload
        if step["type"] == "digest" and step.get("priority") != CRITICAL:
            window_ms = int(self.settings.digest_window_s * 1000)
            payload = DigestItemAdded(digest_key=step["digest_key"],
                                      window_end=(env.time // window_ms + 1) * window_ms, **common)
        else:
            payload = NotificationCreated(**common)
        note = self.producer.envelope(run.user, payload, idempotency_key=idem(
            "wfn", run.id, i), time_ms=env.time)
        [done] = await self.producer.publish_many([note])
        out.append(done.position)
        return done.id

    async def _step(self, run: Run, step: Mapping[str, Any], i: int, outcome: str,
                    position: str, env: Envelope, out: list[str], *, nid: str | None = None,
                    until: int | None = None, condition: str | None = None,
                    result: bool | None = None, inputs: dict[str, Any] | None = None,
                    detail: str = "") -> None:
        decided = WorkflowStepDecided(
            run_id=run.id, step=step["id"], index=i, outcome=outcome, at=position,
            condition=condition, result=result, data=inputs or {}, notification_id=nid,
            until=until, detail=detail)
        envelope = self.producer.envelope(run.user, decided, idempotency_key=idem(
            "wfs", run.id, i, outcome), time_ms=env.time)
        [done] = await self.producer.publish_many([envelope])
        out.append(done.position)
        run.record(step["id"], i, outcome, nid, until)

    async def _end(self, run: Run, outcome: str, position: str, env: Envelope,
                   out: list[str], detail: str) -> None:
        timer = timer_token(run.id, run.at) if run.parked else ""
        ended = WorkflowRunEnded(run_id=run.id, outcome=outcome, at=position, timer=timer,
                                 detail=detail)
        envelope = self.producer.envelope(run.user, ended, idempotency_key=idem("wfe", run.id),
                                          time_ms=env.time)
        [done] = await self.producer.publish_many([envelope])
        out.append(done.position)
        run.fields.update(st=outcome, wt="")


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, earlier: tuple[str, ...]) -> Condition:
    return compile_condition(source, earlier)
