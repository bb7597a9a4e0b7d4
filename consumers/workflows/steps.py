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
from herald.consumers.templates.store import Template, TemplateStore
from herald.consumers.workflows.definition import content_definition
from herald.consumers.workflows.plan import Cause, Decide, End, Send, plan
from herald.consumers.workflows.projection import timer_token
from herald.consumers.workflows.state import Run
from herald.consumers.workflows.store import Workflow, WorkflowStore
from herald.streams import codec
from herald.streams.connection import text
from herald.streams.events import (
    CRITICAL,
    Appended,
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
DEFINITIONS_KEPT = 1024


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
        self._templates: dict[str, Template | None] = {}
        self._definitions: dict[tuple[str, int], Workflow] = {}

    async def decide(self, p: int, ns: str, todo: list[tuple[str, Envelope, list[Run]]]
                     ) -> list[str]:
        """Append what each entry (position, event, the runs it may concern — one Run object
        per run across the batch, so a later entry sees an earlier one's decisions) makes
        the runs do, in two appends: the notifications, then the decisions (each with its
        notification's id). The positions appended."""
        sends: list[tuple[Envelope, str, str]] = []  # (notification, run id, step id)
        later: list[tuple[Run, Any, str, Envelope]] = []  # (run, action, position, cause env)
        self._templates = {}
        recipients = await self._recipients(p, ns, {run.user for _, _, runs in todo
                                                    for run in runs})
        for position, env, runs in todo:
            cause = cause_of(env, position)
            if cause is None:
                continue
            for run in runs:
                # a run triggered later in the log than the entry is not concerned by it
                if not run.running or (cause.kind != "trigger" and \
                        not run.started_before(position)):
                    continue
                found = await self.definitions.get(run.key, run.version)
                if found is None:
                    end = End("failed", f"workflow {run.key!r} version {run.version} is not "
                              "registered", None)
                    run.fields.update(st="failed", wt="")
                    later.append((run, end, position, env))
                    continue
                await self._need_templates(found.definition)
                recipient = recipients[run.user]
                locale = str(recipient["locale"])
                for action in plan(run, found.definition, cause, recipient):
                    if isinstance(action, Send):
                        try:
                            sends.append((self._notification(run, action.step, action.index,
                                                             env, locale),
                                          run.id, str(action.step["id"])))
                        except RenderFailed as exc:
                            later.append((run, End("failed", str(exc), None), position, env))
                            run.fields.update(st="failed", wt="")
                            break
                    else:
                        later.append((run, action, position, env))
        out: list[str] = []
        nids: dict[tuple[str, str], str] = {}
        if sends:
            done = await self._append([note for note, _, _ in sends])
            for (_, rid, sid), appended in zip(sends, done, strict=True):
                nids[(rid, sid)] = appended.id  # the first append's, when repeated
                out.append(appended.position)
        envelopes = [self._decision(run, action, position, env, nids)
                     for run, action, position, env in later]
        if envelopes:
            out += [a.position for a in await self._append(envelopes)]
        return out

    async def _append(self, envelopes: list[Envelope]) -> list[Appended]:
        """Append in order, in batches the producer takes (``HERALD_MAX_BATCH``)."""
        done: list[Appended] = []
        size = self.settings.max_batch
        for first in range(0, len(envelopes), size):
            done += await self.producer.publish_many(envelopes[first:first + size])
        return done

    def _decision(self, run: Run, action: Any, position: str, env: Envelope,
                  nids: dict[tuple[str, str], str]) -> Envelope:
        if isinstance(action, Decide):
            sid = str(action.step["id"])
            decided = WorkflowStepDecided(
                run_id=run.id, step=sid, index=action.index, outcome=action.outcome,
                at=position, condition=action.condition, result=action.result,
                data=action.inputs or {}, until=action.until, detail=action.detail,
                notification_id=nids.get((run.id, sid)) if action.outcome == "sent" else None)
            return self.producer.envelope(run.user, decided, idempotency_key=idem(
                "wfs", run.id, action.index, action.outcome), time_ms=env.time)
        end: End = action
        timer = timer_token(run.id, end.timer_index) if end.timer_index is not None else ""
        ended = WorkflowRunEnded(run_id=run.id, outcome=end.outcome, at=position, timer=timer,
                                 detail=end.detail)
        return self.producer.envelope(run.user, ended, idempotency_key=idem("wfe", run.id),
                                      time_ms=env.time)

    async def _definition(self, key: str, version: int) -> Workflow | None:
        """A version of a definition (immutable once registered: kept, at most
        :data:`DEFINITIONS_KEPT`)."""
        found = self._definitions.get((key, version))
        if found is None:
            found = await self.definitions.get(key, version)
            if found is not None:
                if len(self._definitions) >= DEFINITIONS_KEPT:
                    self._definitions.clear()
                self._definitions[(key, version)] = found
        return found

    async def _recipients(self, p: int, ns: str, users: set[str]) -> dict[str, dict[str, Any]]:
        """What conditions and delays read of each user (one pipeline): id, locale (a
        contact's, set last, over the profile's) and quiet hours (their preferences)."""
        if not users:
            return {}
        ordered = sorted(users)
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in ordered:
                pipe.hmget(self.keys.profile(p, user, ns), "locale", "c:locale")
                pipe.hget(self.keys.preferences(p, user, ns), "quiet")
            replies = iter(await pipe.execute())
        out: dict[str, dict[str, Any]] = {}
        for user in ordered:
            (locale, contact), quiet = next(replies), next(replies)
            chosen = contact if contact is not None else locale
            one: dict[str, Any] = {"id": user,
                                   "locale": text(chosen) if chosen is not None else ""}
            if quiet:
                value = codec.unpack_value(quiet)
                if isinstance(value, dict):
                    one["quiet_hours"] = value
            out[user] = one
        return out

    def _notification(self, run: Run, step: Mapping[str, Any], i: int, env: Envelope,
                      locale: str) -> Envelope:
        """The step's notification (idempotency key ``wfn:<run>:<index>``); RenderFailed
        when its template is gone or does not render."""
        ref, defaults, found = None, {}, None
        if "template" in step:
            found = self._templates.get(str(step["template"]))
            if found is None:
                raise RenderFailed(f"template {step['template']!r} is not registered")
            definition = found.definition
            defaults = {n: definition[n] for n in ("category",) if n in definition}
        else:
            definition = content_definition(step)
        try:
            rendered = self.renderer.render(definition, locale or None, run.data, clip=True)
        except TemplateError as exc:
            raise RenderFailed(f"steps.{i} does not render: {exc}") from exc
        if found is not None:
            ref = {"id": found.id, "version": found.version, "locale": rendered.locale}
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
        return self.producer.envelope(run.user, payload, idempotency_key=idem(
            "wfn", run.id, i), time_ms=env.time)

    async def _need_templates(self, definition: Mapping[str, Any]) -> None:
        """The latest version of each template the definition's sends name (read once
        per batch)."""
        for step in definition["steps"]:
            name = step.get("template")
            if name is not None and name not in self._templates:
                self._templates[name] = await self.templates.get(name)
