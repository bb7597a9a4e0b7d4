"""What a run does about one entry, decided without I/O: the plan both the live role and
the simulation follow.

:func:`plan` takes a run (consumers/workflows/state.py, read as of the entry), its
definition's steps and ``cancel_on``, the :class:`Cause` (the entry: a trigger, a
timer, a business event or a cancel, with its position and log time) and the
recipient, and returns the actions in order: :class:`Send` (a step's notification),
:class:`Decide` (a ``workflow.step_decided``) and :class:`End` (a
``workflow.run_ended``). It updates ``run`` as the projection will, so each decision
sees the ones before it. consumers/workflows/steps.py carries the actions out
(renders, appends); consumers/workflows/simulate.py counts them.

Time is the cause's log time, never a clock: the same entry gives the same plan
whenever, wherever it is handled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from herald.consumers.delivery.quiet import quiet_until
from herald.consumers.workflows.definition import duration_ms, time_value_ms
from herald.consumers.workflows.expressions import ConditionError, compiled
from herald.consumers.workflows.state import Run
from herald.streams import positions

MAX_TIME_MS = 10**15  # what a schedule entry holds (consumers/workflows/projection.py)


@dataclass(frozen=True, slots=True)
class Cause:
    """The entry a plan is for. ``kind``: ``trigger``, ``timer``, ``business``,
    ``cancel``."""

    kind: str
    position: str
    time: int
    index: int = -1  # timer: the parked step
    until: int = 0  # timer: when it was due
    name: str = ""  # business: the event's type; cancel: the cancel key
    data: Mapping[str, Any] = field(default_factory=dict)  # business: the event's data
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    step: Mapping[str, Any]
    index: int


@dataclass(frozen=True, slots=True)
class Decide:
    step: Mapping[str, Any]
    index: int
    outcome: str
    until: int | None = None
    condition: str | None = None
    result: bool | None = None
    inputs: dict[str, Any] | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class End:
    outcome: str
    detail: str
    timer_index: int | None  # the parked step whose timer goes, if any


Action = Send | Decide | End


class _Failed(Exception):
    pass


def plan(run: Run, definition: Mapping[str, Any], cause: Cause,
         recipient: Mapping[str, Any]) -> list[Action]:
    """The actions ``cause`` makes ``run`` take (module doc); [] when it is not concerned."""
    out: list[Action] = []
    if not run.running:
        return out
    steps: Sequence[Mapping[str, Any]] = definition["steps"]
    try:
        if cause.kind == "trigger":
            if not run.parked:
                _advance(run, steps, cause, recipient, out)
        elif cause.kind == "timer":
            if run.parked and run.at == cause.index and run.until == cause.until:
                outcome = "elapsed" if run.parked == "delay" else "timed_out"
                _decide(run, out, Decide(steps[run.at], run.at, outcome))
                _advance(run, steps, cause, recipient, out)
        elif cause.kind == "cancel":
            if run.fields.get("ck") == cause.name:
                _end(run, out, "cancelled", f"cancel key {cause.name!r}")
        elif cause.kind == "business":
            _business(run, definition, steps, cause, recipient, out)
    except _Failed as exc:
        _end(run, out, "failed", str(exc))
    return out


def _matches(field_name: str | None, run: Run, data: Mapping[str, Any]) -> bool:
    if field_name is None:
        return True
    return field_name in run.data and data.get(field_name) == run.data[field_name]


def _business(run: Run, definition: Mapping[str, Any], steps: Sequence[Mapping[str, Any]],
              cause: Cause, recipient: Mapping[str, Any], out: list[Action]) -> None:
    for rule in definition.get("cancel_on") or []:
        if rule["event"] == cause.name and _matches(rule.get("match"), run, cause.data):
            _end(run, out, "cancelled", f"cancel_on {cause.name}")
            return
    if run.parked != "wait" or run.at >= len(steps):
        return
    step = steps[run.at]
    began = run.step_position(str(step["id"]))
    if step.get("event") != cause.name or began is None or \
            not began < positions.padded(cause.position) or \
            not _matches(step.get("match"), run, cause.data):
        return
    _decide(run, out, Decide(step, run.at, "matched",
                             detail=f"{cause.name} {cause.event_id}".strip()))
    if step.get("on_match") == "stop":
        _end(run, out, "stopped", f"{step['id']} matched")
        return
    _advance(run, steps, cause, recipient, out)


def _advance(run: Run, steps: Sequence[Mapping[str, Any]], cause: Cause,
             recipient: Mapping[str, Any], out: list[Action]) -> None:
    """Steps from ``run.at`` until one parks the run or the steps end."""
    ids = [str(s["id"]) for s in steps]
    while run.at < len(steps):
        i = run.at
        step = steps[i]
        condition, result, inputs = step.get("if"), None, None
        if condition is not None:
            inputs = run.inputs(ids[:i], cause.position, recipient)
            try:
                result = compiled(str(condition), tuple(ids[:i])).evaluate(inputs)
            except ConditionError as exc:
                raise _Failed(f"steps.{i}.if {exc}") from exc
            if not result:
                _decide(run, out, Decide(step, i, "skipped", condition=condition, result=False,
                                         inputs=inputs))
                continue
        kind = step["type"]
        if kind in ("send", "digest"):
            out.append(Send(step, i))
            _decide(run, out, Decide(step, i, "sent", condition=condition, result=result,
                                     inputs=inputs))
        elif kind == "delay":
            until, detail = _delay_end(step, run, cause, recipient)
            _decide(run, out, Decide(step, i, "delayed", until=until, condition=condition,
                                     result=result, inputs=inputs, detail=detail))
            return
        else:  # wait_for
            until = cause.time + duration_ms(str(step["timeout"]))
            _decide(run, out, Decide(step, i, "waiting", until=until, condition=condition,
                                     result=result, inputs=inputs, detail=str(step["event"])))
            return
    _end(run, out, "completed", "")


def _delay_end(step: Mapping[str, Any], run: Run, cause: Cause,
               recipient: Mapping[str, Any]) -> tuple[int, str]:
    """When the delay ends, and why it ends later than asked (``""``: it does not)."""
    if "for" in step:
        end = cause.time + duration_ms(str(step["for"]))
    else:
        name = str(step["until"])
        try:
            base = time_value_ms(run.data[name])
        except (KeyError, ValueError, OverflowError) as exc:
            raise _Failed(f"data.{name} is not a date-time: {exc}") from exc
        end = max(0, base + duration_ms(str(step.get("offset", "0s"))))
    if end >= MAX_TIME_MS:
        raise _Failed("the delay ends too far in the future")
    if step.get("window"):
        quiet = recipient.get("quiet_hours")
        if isinstance(quiet, Mapping):
            opens = quiet_until(quiet, end)
            if opens is not None:
                return opens, (f"quiet hours {quiet.get('start')}-{quiet.get('end')} "
                               f"{quiet.get('timezone')}: the next send window")
    return end, ""


def _decide(run: Run, out: list[Action], decision: Decide) -> None:
    out.append(decision)
    run.record(str(decision.step["id"]), decision.index, decision.outcome, None,
               decision.until)


def _end(run: Run, out: list[Action], outcome: str, detail: str) -> None:
    out.append(End(outcome, detail, run.at if run.parked else None))
    run.fields.update(st=outcome, wt="")
