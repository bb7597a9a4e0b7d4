"""The workflows' projection: definitions, runs, and what a run's notifications became.

Pure, like every projection (consumers/projection/registry.py). State (keys in
streams/keys.py, in the projection's namespace):

- ``Keys.workflow(p, key)`` / ``Keys.workflow_index(p)`` — versions of a definition,
  in the partition of the reserved user ``~workflows`` (like templates).
- ``Keys.workflow_run(p, run)`` — hash: ``k`` (workflow key), ``v`` (version), ``u``
  (user), ``tp`` (padded position of the trigger), ``ts`` (its time), ``ck`` (cancel
  key), ``s`` (the trigger's sealed data) or ``d`` (packed data in clear), ``st``
  (``running`` or how it ended), ``ep`` (padded position of the end), ``at`` (index of
  the step it is at), ``wt`` (``""``, ``delay`` or ``wait``: parked at ``at``), ``un``
  (when the park ends, ms), and per step id ``o:<id>`` (last outcome), ``p:<id>``
  (its padded position), ``n:<id>`` (notification id), ``m:<id>`` (padded position
  of the business event a wait matched).
- ``Keys.workflow_run_log(p, run)`` — sorted set of the padded positions of every
  event of the run (its timeline, for ``herald explain``).
- ``Keys.workflow_user_runs(p, user)`` — set: the user's runs not yet ended.
- ``Keys.workflow_note(p, nid)`` — hash: ``run``, ``step`` of a notification a run
  sent, and the first padded positions it was ``read``, ``delivered``, ``failed`` at
  (written by the ``mark_if`` op only while the hash exists, so other notifications
  leave nothing behind).
- a run's timer (a delay, or a wait's timeout) is an entry of the partition's
  schedule (``Keys.schedule``/``Keys.scheduled``, member :func:`timer_token`), fired
  by the scheduler as ``workflow.timer_fired`` (consumers/schedule/firing.py).

Every field is written at a known position, so the ``workflows`` role can read the
run as of any position (consumers/workflows/state.py) — the reason live decisions
equal what a replay of the log shows.
"""

from __future__ import annotations

from herald.consumers.errors import ProjectionError
from herald.consumers.projection.base import WAKE, Context, Projection, Write, checked_id
from herald.consumers.projection.versions import version_writes
from herald.streams import codec, positions
from herald.streams.events import (
    DeliveryFailed,
    DeliverySucceeded,
    Envelope,
    NotificationRead,
    WorkflowRegistered,
    WorkflowRunEnded,
    WorkflowStepDecided,
    WorkflowTimerFired,
    WorkflowTriggered,
)

PARKS = {"delayed": "delay", "waiting": "wait"}  # outcomes that park the run at its step
ADVANCES = frozenset({"sent", "skipped", "elapsed", "matched", "timed_out"})
OUTCOMES = frozenset(PARKS) | ADVANCES
ENDS = frozenset({"completed", "stopped", "cancelled", "failed"})


def timer_token(run_id: str, index: int) -> str:
    """The schedule member of a run's timer at step ``index``."""
    return f"wft.{run_id}.{index}"


def project_registered(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: WorkflowRegistered = env.payload  # type: ignore[assignment]
    return version_writes(ctx.keys.workflow(ctx.partition, p.workflow_key, ctx.ns),
                          ctx.keys.workflow_index(ctx.partition, ctx.ns), p.workflow_key,
                          p.version, p.definition, env.time)


def _logged(ctx: Context, run_id: str, position: str) -> Write:
    return ("call", "ZADD", ctx.keys.workflow_run_log(ctx.partition, run_id, ctx.ns), "0",
            positions.padded(position))


def project_triggered(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: WorkflowTriggered = env.payload  # type: ignore[assignment]
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    fields: list[str | bytes] = ["k", p.workflow_key, "v", str(p.version), "u", env.user,
              "tp", positions.padded(position), "ts", str(env.time), "st", "running",
              "at", "0", "wt", "", "ck", p.cancel_key or ""]
    if env.sealed is not None:
        fields += ["s", env.sealed]
    elif p.data:
        fields += ["d", codec.pack_value(p.data)]
    return [("call", "HSET", k.workflow_run(part, env.id, ns), *fields),
            ("call", "SADD", k.workflow_user_runs(part, env.user, ns), env.id),
            _logged(ctx, env.id, position)]


def _remove_timer(ctx: Context, user: str, token: str) -> list[Write]:
    k, p, ns = ctx.keys, ctx.partition, ctx.ns
    return [("call", "ZREM", k.schedule(p, ns), token), ("call", "DEL", k.scheduled(p, token, ns)),
            ("call", "SREM", k.user_schedules(p, user, ns), token)]


def project_step(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: WorkflowStepDecided = env.payload  # type: ignore[assignment]
    if p.outcome not in OUTCOMES:
        raise ProjectionError(f"invalid: unknown step outcome {p.outcome!r}")
    run = checked_id(p.run_id)
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    padded = positions.padded(position)
    fields = [f"o:{p.step}", p.outcome, f"p:{p.step}", padded]
    writes: list[Write] = [_logged(ctx, run, position)]
    if p.outcome in PARKS:
        if p.until is None or not 0 <= p.until < 10**15:
            raise ProjectionError(f"invalid: a {p.outcome} step needs until in range")
        fields += ["at", str(p.index), "wt", PARKS[p.outcome], "un", str(p.until)]
        token = timer_token(run, p.index)
        timer = codec.pack_binary({"u": env.user, "wf": run, "i": p.index, "p": position})
        writes += [("call", "ZADD", k.schedule(part, ns), str(p.until), token),
                   ("call", "SET", k.scheduled(part, token, ns), timer),
                   ("call", "SADD", k.user_schedules(part, env.user, ns), token),
                   (WAKE, p.until)]
    else:
        fields += ["at", str(p.index + 1), "wt", "", "un", ""]
        if p.outcome == "matched":
            fields += [f"m:{p.step}", padded]
            writes += _remove_timer(ctx, env.user, timer_token(run, p.index))
    if p.notification_id:
        nid = checked_id(p.notification_id)
        fields += [f"n:{p.step}", nid]
        writes.append(("call", "HSET", k.workflow_note(part, nid, ns), "run", run,
                       "step", p.step))
    writes.insert(0, ("call", "HSET", k.workflow_run(part, run, ns), *fields))
    return writes


def project_ended(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: WorkflowRunEnded = env.payload  # type: ignore[assignment]
    if p.outcome not in ENDS:
        raise ProjectionError(f"invalid: unknown run outcome {p.outcome!r}")
    run = checked_id(p.run_id)
    k, part, ns = ctx.keys, ctx.partition, ctx.ns
    writes: list[Write] = [
        ("call", "HSET", k.workflow_run(part, run, ns), "st", p.outcome, "ep",
         positions.padded(position), "wt", "", "un", ""),
        ("call", "SREM", k.workflow_user_runs(part, env.user, ns), run),
        _logged(ctx, run, position)]
    if p.timer:
        writes += _remove_timer(ctx, env.user, p.timer)
    return writes


def project_timer(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: WorkflowTimerFired = env.payload  # type: ignore[assignment]
    run = checked_id(p.run_id)
    return [*_remove_timer(ctx, env.user, timer_token(run, p.index)),
            _logged(ctx, run, position)]


def _mark(ctx: Context, nid: str, field: str, position: str) -> Write:
    return ("mark_if", ctx.keys.workflow_note(ctx.partition, nid, ctx.ns), field,
            positions.padded(position))


def mark_read(env: Envelope, position: str, ctx: Context) -> list[Write]:
    """A read of a run's notification, kept for its conditions (``steps.x.read``)."""
    p: NotificationRead = env.payload  # type: ignore[assignment]
    return [_mark(ctx, checked_id(p.notification_id), "read", position)]


def mark_delivered(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: DeliverySucceeded = env.payload  # type: ignore[assignment]
    return [_mark(ctx, checked_id(p.notification_id), "delivered", position)]


def mark_failed(env: Envelope, position: str, ctx: Context) -> list[Write]:
    p: DeliveryFailed = env.payload  # type: ignore[assignment]
    if not p.final:
        return []
    return [_mark(ctx, checked_id(p.notification_id), "failed", position)]


PROJECTIONS: dict[str, Projection] = {
    WorkflowRegistered.TYPE: project_registered,
    WorkflowTriggered.TYPE: project_triggered,
    WorkflowStepDecided.TYPE: project_step,
    WorkflowRunEnded.TYPE: project_ended,
    WorkflowTimerFired.TYPE: project_timer,
}
# Types other rooms project too: chained after theirs (consumers/projection/registry.py).
MARKS: dict[str, Projection] = {
    NotificationRead.TYPE: mark_read,
    DeliverySucceeded.TYPE: mark_delivered,
    DeliveryFailed.TYPE: mark_failed,
}
