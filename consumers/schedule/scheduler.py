"""The ``scheduler`` role: due reminders and closed digest windows become created events.

One active scheduler per partition: it holds the partition's lease of the
``scheduler`` group (consumers/group/lease.py, the same leases and balancing the consumer
runtime uses); many processes may run the role and share the partitions.

A tick reads, per owned partition, the due part of the projected schedule
(``ZRANGEBYSCORE`` up to now, at most :data:`DUE_BATCH`) and of the digest items,
builds the events in Python (consumers/schedule/firing.py and digest.py) and fires
the whole batch with ONE script call per partition
(consumers/schedule/lua/scheduler_fire.lua). Between ticks it sleeps until the
earliest entry not yet due (read in the same tick), woken earlier by the projector's
"due at" signal when it projects something due sooner (``Keys.schedule_signal``,
sharded pub/sub: streams/signals.py), by a partition gained, or by a re-subscription
(signals may have been missed); it never sleeps longer than :data:`IDLE_MAX_S` (a
replay may have switched the view) and ticks at most once per
:data:`POLL_INTERVAL_S`, so an idle scheduler costs next to nothing and a busy one
polls as before. That script, atomically on the partition's slot:

1. refuses to run unless this scheduler still holds the lease (fencing);
2. skips an entry whose idempotency key exists (``fire:{id}`` / the summary key, in
   the producer's ``Keys.idempotency`` layout): it was fired or dropped already;
3. for a reminder with a cancel key whose tombstone holds a cancel positioned after
   the schedule event, appends the "dropped" ``schedule.cancelled`` event instead;
4. otherwise appends the ``notification.created`` (``notification_id`` = the
   scheduled id, or the digest's first item id).

Guarantees: at most one created-or-dropped event per scheduled id within the dedupe
window (``HERALD_DEDUPE_WINDOW``), with any number of schedulers and a crash at any
point (before the script nothing happened; the script is atomic; after it, a re-fire
is a duplicate). A cancel appended before the fire always wins (the tombstone is
written with the cancel). Never early: only entries with due <= now are read.
The projector removes an entry when it applies its created or dropped event; until
then the scheduler remembers what it fired (by position) and does not fire it again.

Failure modes: Redis errors back off (up to 5 s) and retry; a fenced
script drops the partition (another scheduler has it); an entry that cannot become
a valid event is logged (``schedule_entry_invalid``) and left in the schedule. If the
projector is stopped for longer than the dedupe window after a fire, the entry could
fire again (the idempotency key has expired); the projector normally removes it
within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from herald.consumers.aio import check_cancelled, consumer_name, sleep_unless
from herald.consumers.group.lease import LeaseChanges, Leases
from herald.consumers.metrics import SCHEDULER, consumer_metrics
from herald.consumers.projection.applier import GROUP as PROJECTOR
from herald.consumers.projection.views import Views
from herald.consumers.schedule.digest import DigestWords, build_summary
from herald.consumers.schedule.firing import (
    GROUP,
    Fire,
    FireScript,
    Outcome,
    digest_fire,
    reminder_fire,
)
from herald.consumers.schedule.projection import parse_digest_member
from herald.consumers.templates.store import Template, TemplateStore
from herald.streams import codec, positions
from herald.streams.clock import ServerClock
from herald.streams.connection import REDIS_ERRORS, Backoff, text
from herald.streams.crypto import CryptoError
from herald.streams.errors import CodecError, ValidationError
from herald.streams.idempotency import IdempotencyRecords
from herald.streams.keys import Keys
from herald.streams.keystore import KeyStore
from herald.streams.log import get_logger
from herald.streams.sealing import open_blob
from herald.streams.settings import Settings
from herald.streams.signals import SignalSubscriber
from herald.streams.validation import TEMPLATE_ID_RE as _TEMPLATE_ID
from herald.streams.validation import Limits

POLL_INTERVAL_S = 0.05  # shortest time between ticks (timer resolution under load)
IDLE_MAX_S = 10.0  # longest sleep between ticks
DUE_BATCH = 2000  # due reminders fired per partition per poll
DIGEST_BATCH = 2000  # due digest items read per partition per poll
PENDING_MAX = 50_000  # fired, not yet projected, per partition: beyond it, wait
VIEW_REFRESH_S = 1.0

log = get_logger(__name__)


class Scheduler:
    """One scheduler process's share of the partitions; see the module docstring."""

    def __init__(
        self, settings: Settings, redis: Any, *, consumer: str | None = None,
        partitions: Sequence[int] | None = None, poll_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.consumer = consumer or consumer_name()
        self.keys = Keys(settings.prefix)
        self.partitions = list(range(settings.partitions) if partitions is None else partitions)
        self.leases = Leases(redis, settings, GROUP, self.consumer, self.partitions)
        self.views = Views(redis, settings)
        self.limits = Limits.from_settings(settings)
        self.data_keys = KeyStore(redis, settings)
        self.clock = ServerClock(redis)
        self.script = FireScript(redis, IdempotencyRecords.from_settings(settings),
                                 self.consumer)
        self.templates = TemplateStore(redis, settings)
        self.poll_s = poll_s
        self.counts: dict[str, int] = defaultdict(int)
        self.metrics = consumer_metrics()  # consumers/metrics.py
        self.metrics.track(SCHEDULER)
        # Fired (or found fired) but not yet projected: token → position, per partition.
        self._pending: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
        self._invalid: set[str] = set()
        self._views_at = 0.0
        self._log = log.bind(group=GROUP, consumer=self.consumer)
        # Sleeping: the earliest time (epoch ms) something is known to be due, whether
        # more is due now, and the event that cuts a sleep short.
        self.ticks = 0
        self._next_due = math.inf
        self._more = False
        self._woken = asyncio.Event()
        self._channels = {self.keys.schedule_signal(p): p for p in self.partitions}
        self._signals = SignalSubscriber(redis, self._on_signal, self._on_subscribed,
                                         name="scheduler")

    # ------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event) -> None:
        """Fire due entries until ``stop``; cancelling the task is a crash (leases kept)."""
        lease_task = asyncio.create_task(self._lease_loop(stop), name="scheduler-leases")
        try:
            await self._poll_loop(stop)
        except asyncio.CancelledError:
            lease_task.cancel()
            raise
        finally:
            if not lease_task.done():
                lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                await lease_task
            await self._signals.stop()
        try:
            await self.leases.release(sorted(self.leases.owned))
            await self.leases.leave()
        except REDIS_ERRORS as exc:
            self._log.warning("leases_not_released", error=str(exc))
        self._log.info("scheduler_stopped", **self.counts)

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            started = time.monotonic()
            self._woken.clear()  # a signal from now on cuts the next sleep short
            try:
                await self.tick()
                check_cancelled()  # redis-py may have swallowed a cancel (consumers/aio.py)
                backoff.reset()
            except REDIS_ERRORS as exc:
                wait = backoff.next()
                self._log.warning("redis_unavailable", error=str(exc), retry_in=wait)
                await sleep_unless(stop, wait)
                continue
            await sleep_unless(stop, self.poll_s - (time.monotonic() - started))
            await self._sleep(stop)

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until the next known due time, a wake-up, ``stop``, or IDLE_MAX_S."""
        until = time.monotonic() + IDLE_MAX_S
        while not stop.is_set() and not self._more:
            left = min(until - time.monotonic(),
                       (self._next_due - self.clock.local_ms()) / 1000)
            if left <= 0 or self._woken.is_set():
                return
            await sleep_unless(stop, left, self._woken)

    def _on_signal(self, channel: str, data: bytes) -> None:
        """The projector projected something of a partition due at ``data`` (ms)."""
        if self._channels.get(channel) not in self.leases.owned:
            return
        try:
            due = int(data)
        except ValueError:
            return
        if due < self._next_due:
            self._next_due = due
            self._woken.set()

    def _on_subscribed(self, channel: str) -> None:
        self._woken.set()  # signals may have been missed meanwhile: look

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        await self.leases.maintain(stop, self._on_lease_changes, self._log)

    async def _on_lease_changes(self, changes: LeaseChanges) -> None:
        if changes.surplus:
            await self.leases.release(changes.surplus)
        gone = [*changes.lost, *changes.surplus]
        for p in gone:
            self._pending.pop(p, None)
        await self._signals.unsubscribe(self.keys.schedule_signal(p) for p in gone)
        if changes.acquired:
            await self._signals.subscribe(self.keys.schedule_signal(p)
                                          for p in changes.acquired)
            self._woken.set()

    # --------------------------------------------------------------------- poll
    async def tick(self) -> int:
        """One poll over the owned partitions; the number of events appended."""
        self.ticks += 1
        owned = sorted(self.leases.owned)
        if not owned:
            return 0
        if time.monotonic() - self._views_at >= VIEW_REFRESH_S:
            await self.views.read(owned)
            self._views_at = time.monotonic()
        now = await self.clock.now_ms()  # the server's clock, not this machine's
        k = self.keys
        asked: dict[int, bool] = {}  # whether p's checkpoint was read: the lease cycle
        # may change self._pending while the pipeline runs, the replies must not shift
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in owned:
                ns, waiting = self.views.cached(p), len(self._pending[p])
                asked[p] = bool(waiting)
                pipe.zrangebyscore(k.schedule(p, ns), "-inf", now, start=0,
                                   num=DUE_BATCH + waiting, withscores=True)
                pipe.zrangebyscore(k.digests_due(p, ns), "-inf", now, start=0,
                                   num=DIGEST_BATCH + waiting, withscores=True)
                # the earliest of each not yet due: how long the scheduler may sleep
                pipe.zrangebyscore(k.schedule(p, ns), f"({now}", "+inf", start=0, num=1,
                                   withscores=True)
                pipe.zrangebyscore(k.digests_due(p, ns), f"({now}", "+inf", start=0, num=1,
                                   withscores=True)
                if waiting:  # only then does the projector's progress matter
                    pipe.get(k.checkpoint(p, ns, PROJECTOR))
            replies = iter(await pipe.execute())
        reminders: dict[int, list[tuple[str, int]]] = {}
        digests: dict[int, list[tuple[str, int]]] = {}
        self._next_due, self._more = math.inf, False
        for p in owned:
            due_rows, digest_rows = next(replies), next(replies)
            for _member, score in (*next(replies), *next(replies)):
                self._next_due = min(self._next_due, int(score))
            pending = self._pending[p]
            if asked[p]:
                self._settle(pending, next(replies))
            waiting = len(pending)
            if len(due_rows) >= DUE_BATCH + waiting or len(digest_rows) >= DIGEST_BATCH + waiting:
                self._more = True  # more is due than one tick takes
            if len(pending) >= PENDING_MAX:
                self._more = True
                continue  # the projector is far behind: wait for it
            reminders[p] = [(text(m), int(s)) for m, s in due_rows
                            if text(m) not in pending and text(m) not in self._invalid]
            digests[p] = [(text(m), int(s)) for m, s in digest_rows
                          if text(m) not in pending and text(m) not in self._invalid]
        fires = await self._build(reminders, digests, now)
        return await self._fire(fires)

    @staticmethod
    def _settle(pending: dict[str, tuple[int, int]], checkpoint: Any) -> None:
        """Forget fired entries the projector has applied; the rest stay pending."""
        if checkpoint is not None:
            done = positions.parse(text(checkpoint))
            for token in [t for t, at in pending.items() if at <= done]:
                del pending[token]

    async def _build(
        self, reminders: dict[int, list[tuple[str, int]]],
        digests: dict[int, list[tuple[str, int]]], now: int,
    ) -> dict[int, list[Fire]]:
        k = self.keys
        groups: dict[tuple[int, str, str], list[tuple[str, str, int]]] = defaultdict(list)
        for p, members in digests.items():
            for member, due in members:
                try:
                    user, dkey, _window, field = parse_digest_member(member)
                except ValueError:
                    continue
                groups[(p, user, dkey)].append((member, field, due))
        plan: list[tuple[str, int, Any]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for p, rows_due in reminders.items():
                ns = self.views.cached(p)
                for nid, score in rows_due:
                    pipe.get(k.scheduled(p, nid, ns))
                    plan.append(("r", p, (nid, score)))
            for (p, user, dkey), rows in groups.items():
                pipe.hmget(k.digest(p, user, dkey, self.views.cached(p)), [f for _, f, _ in rows])
                plan.append(("d", p, (user, dkey, rows)))
                # the user's locale: a profile's, or a contact's set since (never sealed)
                pipe.hmget(k.profile(p, user, self.views.cached(p)), "locale", "c:locale")
            replies = await pipe.execute() if plan else []
        fires: dict[int, list[Fire]] = defaultdict(list)
        answers = iter(replies)
        templates: dict[str, Template | None] = {}  # this tick's lookups
        for kind, p, what in plan:
            value = next(answers)
            locale = next(answers) if kind == "d" else None
            try:
                if kind == "r":
                    nid, score = what
                    if value is not None:
                        fires[p].append(reminder_fire(k, p, nid, value, score, now, self.limits))
                else:
                    user, dkey, rows = what
                    words = await self._words(dkey, locale or [None, None], templates)
                    fires[p].extend(await self._summaries(p, user, dkey, rows, value, now,
                                                          words))
            except (CodecError, CryptoError, ValidationError, KeyError, TypeError) as exc:
                token = what[0] if kind == "r" else f"{what[0]}|{what[1]}"
                self._invalid.update([what[0]] if kind == "r" else [m for m, _, _ in what[2]])
                self._log.error("schedule_entry_invalid", partition=p, entry=token,
                                error=str(exc))
        return fires

    async def _words(self, digest_key: str, locale: list[Any],
                     templates: dict[str, Template | None]) -> DigestWords:
        """The template of a user's summary (``digest.<key>``, ``digest``, else built in)
        and their locale (the contact's, set last, over the profile's; "" = removed)."""
        chosen = text(locale[1]) if locale[1] is not None else \
            (text(locale[0]) if locale[0] is not None else "")
        for name in (f"digest.{digest_key}".lower(), "digest"):
            if name not in templates:
                templates[name] = await self.templates.get(name) \
                    if _TEMPLATE_ID.fullmatch(name) else None
            found = templates[name]
            if found is not None:
                return DigestWords(found.id, found.version, found.definition, chosen or None)
        return DigestWords(locale=chosen or None)

    async def _summaries(self, p: int, user: str, dkey: str,
                         rows: list[tuple[str, str, int]], values: list[Any], now: int,
                         words: DigestWords | None = None) -> list[Fire]:
        """One summary per window (the first ones that fit; the rest on the next poll).

        Items whose content is sealed are opened with the user's data key, and the
        summary is sealed with it again (streams/sealing.py); an erased user's items
        summarise as empty content."""
        windows: dict[int, list[tuple[str, dict[str, Any], str, int]]] = defaultdict(list)
        for (member, field, due), raw in zip(rows, values, strict=True):
            if raw is not None:
                windows[due].append((field, await self._opened_item(user, raw), member, due))
        key = await self.data_keys.current(user) if self.settings.seal else None
        out = []
        for window_end, items in sorted(windows.items()):
            items.sort(key=lambda row: row[0])
            summary = build_summary(p, user, dkey, window_end, [(f, i) for f, i, _, _ in items],
                                    self.limits, now, words)
            if summary is not None:
                covered = set(summary.fields)
                members = [m for f, _, m, _ in items if f in covered]
                out.append(digest_fire(summary, members, window_end, self.limits, key))
        return out

    async def _opened_item(self, user: str, raw: bytes) -> dict[str, Any]:
        """A collected digest item with its sealed content (``s``) opened into t/b/d/r."""
        item: dict[str, Any] = codec.unpack_binary(raw)
        sealed = item.pop("s", None)
        if sealed is not None:
            fields = await open_blob(self.data_keys, user, sealed) or {}
            item.update(t=fields.get("title", ""), b=fields.get("body", ""),
                        d=fields.get("data", {}), r=fields.get("recipients", {}))
        return item

    async def _fire(self, fires: dict[int, list[Fire]]) -> int:
        parts = [p for p, batch in fires.items() if batch]
        if not parts:
            return 0
        results = await asyncio.gather(*(self.script.fire(p, fires[p]) for p in parts))
        appended = 0
        now = self.clock.local_ms()
        for p, outcomes in zip(parts, results, strict=True):
            if outcomes is None:
                self.leases.owned.discard(p)
                self._pending.pop(p, None)
                self._log.warning("lease_lost", partition=p)
                continue
            appended += self._record(p, outcomes, now)
        return appended

    def _record(self, p: int, outcomes: list[Outcome], now: int) -> int:
        pending = self._pending[p]
        appended = 0
        for o in outcomes:
            at = positions.parse(o.position)
            for token in (o.fire.token, *o.fire.members):
                pending[token] = at
            self.counts[o.outcome] += 1
            self.metrics.fired.labels(o.outcome).inc()
            if o.outcome != "duplicate":
                appended += 1
                self.counts["lateness_ms_max"] = max(self.counts["lateness_ms_max"],
                                                     now - o.fire.due)
        return appended


async def run(settings: Settings, redis: Any, stop: asyncio.Event) -> None:
    """The ``scheduler`` role (consumers/roles.py)."""
    await Scheduler(settings, redis).run(stop)
