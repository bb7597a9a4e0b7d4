"""Model-based: random users doing random things at random times (reads, business events
that match or not, cancels by event and by key) while a worker may be killed; every run's
decisions must be what a small model derives from the positions of those things in the
log, each decision once, each notification once, and replay must equal live."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.consumers.replay.verify import Verifier
from herald.streams import connection
from herald.streams.events import Envelope, NotificationCreated, ScheduleCancelled
from herald.streams.positions import parse
from tests.consumers.helpers import make_settings
from tests.consumers.workflows.conftest import Deployment

pytestmark = pytest.mark.slow

FLOW: dict[str, Any] = {
    "example": {"n": 1},
    "cancel_on": [{"event": "stop", "match": "n"}],
    "steps": [
        {"id": "first", "type": "send", "channels": ["in_app"], "title": "first {{ n }}"},
        {"id": "pause", "type": "delay", "for": "250ms"},
        {"id": "wait", "type": "wait_for", "event": "done", "match": "n", "timeout": "300ms"},
        {"id": "last", "type": "send", "channels": ["in_app"], "title": "last {{ n }}",
         "if": "!steps.first.read && !steps.wait.matched"},
    ],
}
ACTIONS = st.lists(st.tuples(st.sampled_from(["read", "done", "done_other", "stop",
                                               "stop_other", "cancel_key"]),
                             st.integers(min_value=0, max_value=800)), max_size=3)


def _decisions(log: list[tuple[str, Envelope]], run: str) -> list[tuple[str, str, str]]:
    return [(pos, getattr(e.payload, "step", "run"), e.payload.outcome)  # type: ignore[attr-defined]
            for pos, e in log if getattr(e.payload, "run_id", None) == run
            and e.type in ("workflow.step_decided", "workflow.run_ended")]


def model(log: list[tuple[str, Envelope]], run: str, n: int) -> list[tuple[str, str]]:
    """What the run must have decided, from the positions of what happened to it."""
    p = parse
    decided = _decisions(log, run)
    at = {(step, outcome): pos for pos, step, outcome in decided}
    first_nid = next(e.payload.notification_id for _, e in log  # type: ignore[attr-defined]
                     if getattr(e.payload, "run_id", None) == run and
                     getattr(e.payload, "step", "") == "first" and
                     getattr(e.payload, "outcome", "") == "sent")
    trigger = next(pos for pos, e in log if e.id == run)
    waiting = at.get(("wait", "waiting"))
    timer = next((pos for pos, e in log if e.type == "workflow.timer_fired"
                  and e.payload.run_id == run and e.payload.index == 2), None)  # type: ignore[attr-defined]
    # the first cancel after the trigger, by event or key, wins
    cancels = [pos for pos, e in log if p(pos) > p(trigger) and (
        (e.type == "business.event" and e.payload.name == "stop"  # type: ignore[attr-defined]
        and e.payload.data.get("n") == n)  # type: ignore[attr-defined]
        or (isinstance(e.payload, ScheduleCancelled) and e.payload.notification_id is None))]
    matches = [pos for pos, e in log if e.type == "business.event"
               and e.payload.name == "done" and e.payload.data.get("n") == n]  # type: ignore[attr-defined]
    reads = [pos for pos, e in log if e.type == "notification.read"
             and e.payload.notification_id == first_nid]  # type: ignore[attr-defined]
    want = [("first", "sent"), ("pause", "delayed")]
    cancel = min(cancels, key=p) if cancels else None

    def before(a: str | None, b: str | None) -> bool:
        return a is not None and (b is None or p(a) < p(b))

    def ended(outcome: str) -> list[tuple[str, str]]:
        return [*want, ("run", outcome)]

    delay_fired = next((pos for pos, e in log if e.type == "workflow.timer_fired"
                        and e.payload.run_id == run and e.payload.index == 1), None)  # type: ignore[attr-defined]
    if before(cancel, delay_fired):
        return ended("cancelled")
    want += [("pause", "elapsed"), ("wait", "waiting")]
    match = min((m for m in matches if waiting is not None and p(m) > p(waiting)), key=p,
                default=None)
    first_event = min([x for x in (cancel, match, timer) if x is not None], key=p)
    if first_event == cancel:
        return ended("cancelled")
    if first_event == match:
        want.append(("wait", "matched"))
        decide_at = match
    else:
        want.append(("wait", "timed_out"))
        decide_at = timer
    read = any(p(r) <= p(decide_at) for r in reads)  # type: ignore[arg-type]
    matched = first_event == match
    want.append(("last", "skipped" if read or matched else "sent"))
    return ended("completed")


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(plans=st.lists(ACTIONS, min_size=3, max_size=6), kill=st.booleans())
def test_runs_decide_what_the_model_derives_from_the_log(redis_url: str,
                                                         plans: list[list[tuple[str, int]]],
                                                         kill: bool) -> None:
    asyncio.run(_example(redis_url, plans, kill))


async def _example(redis_url: str, plans: list[list[tuple[str, int]]], kill: bool) -> None:
    s = make_settings(redis_url, lease_ttl_s=1.0, partitions=4)
    redis = connection.connect(s)
    d = Deployment(s, redis)
    d.start()
    try:
        await d.register("flow", FLOW)
        users = [f"u{i}" for i in range(len(plans))]
        runs = {u: await d.trigger(u, "flow", {"n": i}, cancel_key=f"k{i}")
                for i, u in enumerate(users)}

        async def act(i: int, user: str, plan: list[tuple[str, int]]) -> None:
            for kind, delay_ms in sorted(plan, key=lambda a: a[1]):
                await asyncio.sleep(delay_ms / 1000)
                if kind == "read":
                    nid = await _first_note(d, user)
                    if nid is not None:
                        await d.read(user, nid)
                elif kind in ("done", "stop"):
                    await d.business(user, kind, {"n": i})
                elif kind in ("done_other", "stop_other"):
                    await d.business(user, kind.split("_")[0], {"n": 1000 + i})
                else:
                    await d.publish(user, ScheduleCancelled(cancel_key=f"k{i}"))

        async def killer() -> None:
            if kill:
                await asyncio.sleep(0.3)
                victim = d.tasks[2]
                victim.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await victim
                d.start_workflows("w2")

        await asyncio.gather(killer(), *(act(i, u, plan)
                                         for i, (u, plan) in enumerate(zip(users, plans,
                                                                           strict=True))))
        for u, run in runs.items():
            await d.ended(u, run)
        report = await Verifier(redis, s).run()
        assert report.identical, report.differences
        for i, u in enumerate(users):
            log = await _positions(d, u)
            got = [(step, outcome) for _, step, outcome in _decisions(log, runs[u])]
            assert got == model(log, runs[u], i), (u, plans[i], got)
            notes = Counter(e.payload.title for _, e in log
                            if isinstance(e.payload, NotificationCreated))
            assert all(v == 1 for v in notes.values()), notes
            sent_last = ("last", "sent") in got
            assert (f"last {i}" in notes) is sent_last
    finally:
        await d.close()
        await redis.aclose()


async def _first_note(d: Deployment, user: str) -> str | None:
    for e in await d.log(user):
        if isinstance(e.payload, NotificationCreated) and e.payload.title.startswith("first"):
            return e.id
    return None


async def _positions(d: Deployment, user: str) -> list[tuple[str, Envelope]]:
    from herald.streams import codec, sealing
    from herald.streams.keys import Keys
    from herald.streams.keystore import KeyStore
    from herald.streams.partitions import partition_for

    p = partition_for(user, d.settings.partitions)
    store, out = KeyStore(d.redis, d.settings), []
    for pos, fields in await d.redis.xrange(Keys(d.settings.prefix).stream(p)):
        env = codec.decode(fields[b"e"])
        if env.user == user:
            out.append((pos.decode(), await sealing.opened(store, env) or env))
    return out
