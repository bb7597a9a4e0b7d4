"""Carrying out a plan: the live ``workflows`` role's side effects.

:meth:`Decider.decide` builds the :class:`~consumers.workflows.plan.Cause` of the
handled entry, asks :func:`~consumers.workflows.plan.plan` what each concerned run
does, and appends it in order: a step's notification (rendered from its template, or
its inline title and body, in the recipient's locale), its ``workflow.step_decided``
(with the notification's id) and the ``workflow.run_ended``
(consumers/workflows/engine.py says when).

Idempotency keys (``wfn:`` a step's notification, ``wfs:`` a step's decision with its
outcome, ``wfe:`` the run's end) name the run and the step: an entry handled again
appends nothing twice, and whichever of a match or a timeout was appended first is the
only one. A notification that cannot be rendered ends the run ``failed``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from herald.consumers.templates.render import Renderer, TemplateError
from herald.consumers.templates.store import TemplateStore
from herald.consumers.workflows.definition import content_definition
from herald.consumers.workflows.plan import Cause, Decide, End, Send, plan
from herald.consumers.workflows.projection import timer_token
from herald.consumers.workflows.state import Run
from herald.consumers.workflows.store import WorkflowStore
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


def idem(*parts: Any) -> str:
    """An idempotency key of the parts (hashed when it would be too long)."""
    key = ":".join(str(p) for p in parts)
    if len(key) <= KEY_MAX and KEY_RE.match(key):
        return key
    return f"{parts[0]}:h:" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def cause_of(env: Envelope, position: str) -> Cause | None:
    """The plan's cause of an entry (None: not one the runs act on)."""
    p = env.payload
    if isinstance(p, WorkflowTriggered):
        return Cause("trigger", position, env.time)
    if isinstance(p, WorkflowTimerFired):
        return Cause("timer", position, env.time, index=p.index, until=p.until)
    if isinstance(p, BusinessEventReceived):
        return Cause("business", position, env.time, name=p.name, data=p.data,
                     event_id=env.id)
    if isinstance(p, ScheduleCancelled) and p.notification_id is None and p.cancel_key:
        return Cause("cancel", position, env.time, name=p.cancel_key)
    return None


class RenderFailed(Exception):
    """A step's notification cannot be built (its template is gone, or does not render)."""


class Decider:
    """Carries out the plans of the ``workflows`` role."""

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
        cause = cause_of(env, position)
        out: list[str] = []
        if cause is None:
            return out
        for run in runs.values():
            # a run triggered later in the log than the entry is not concerned by it
            if not run.running or (cause.kind != "trigger" and not run.started_before(position)):
                continue
            found = await self.definitions.get(run.key, run.version)
            if found is None:
                await self._end(run, End("failed", f"workflow {run.key!r} version "
                                         f"{run.version} is not registered", None), env, out,
                                position)
                continue
            locale = await self._locale(p, ns, run.user)
            nid: str | None = None
            for action in plan(run, found.definition, cause, {"id": run.user,
                                                               "locale": locale}):
                if isinstance(action, Send):
                    try:
                        nid = await self._send(run, action.step, action.index, env, locale, out)
                    except RenderFailed as exc:
                        await self._end(run, End("failed", str(exc), None), env, out,
                                        position)
                        break
                elif isinstance(action, Decide):
                    await self._step(run, action, position, env, out,
                                     nid if action.outcome == "sent" else None)
                else:
                    await self._end(run, action, env, out, position)
        return out

    async def _locale(self, p: int, ns: str, user: str) -> str:
        locale, contact = await self.redis.hmget(self.keys.profile(p, user, ns), "locale",
                                                 "c:locale")
        chosen = contact if contact is not None else locale
        return text(chosen) if chosen is not None else ""

    async def _send(self, run: Run, step: Mapping[str, Any], i: int, env: Envelope,
                    locale: str, out: list[str]) -> str:
        """Append the step's notification; its id (the first append's, when repeated)."""
        ref, version, defaults = None, 0, {}
        if "template" in step:
            found = await self.templates.get(step["template"])
            if found is None:
                raise RenderFailed(f"template {step['template']!r} is not registered")
            definition, version = found.definition, found.version
            defaults = {n: definition[n] for n in ("category",) if n in definition}
        else:
            definition = content_definition(step)
        try:
            rendered = self.renderer.render(definition, locale or None, run.data, clip=True)
        except TemplateError as exc:
            raise RenderFailed(f"steps.{i} does not render: {exc}") from exc
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
        run.fields[f"n:{step['id']}"] = done.id
        return done.id

    async def _step(self, run: Run, d: Decide, position: str, env: Envelope, out: list[str],
                    nid: str | None) -> None:
        decided = WorkflowStepDecided(
            run_id=run.id, step=str(d.step["id"]), index=d.index, outcome=d.outcome,
            at=position, condition=d.condition, result=d.result, data=d.inputs or {},
            notification_id=nid, until=d.until, detail=d.detail)
        envelope = self.producer.envelope(run.user, decided, idempotency_key=idem(
            "wfs", run.id, d.index, d.outcome), time_ms=env.time)
        [done] = await self.producer.publish_many([envelope])
        out.append(done.position)

    async def _end(self, run: Run, end: End, env: Envelope, out: list[str],
                   position: str) -> None:
        timer = timer_token(run.id, end.timer_index) if end.timer_index is not None else ""
        ended = WorkflowRunEnded(run_id=run.id, outcome=end.outcome, at=position,
                                 timer=timer, detail=end.detail)
        envelope = self.producer.envelope(run.user, ended, idempotency_key=idem("wfe", run.id),
                                          time_ms=env.time)
        [done] = await self.producer.publish_many([envelope])
        out.append(done.position)
        run.fields.update(st=end.outcome, wt="")
