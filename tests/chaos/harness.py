"""The chaos harness: a real deployment in subprocesses, a ledger outside Herald, checks.

:class:`Deployment` runs the real server (its own data folder and port, restartable
on that port with other persistence settings), ``herald api`` and ``herald worker``
subprocesses, and a webhook sink (a real HTTP server on 127.0.0.1 that records every
request it receives). :class:`Loader` publishes through the HTTP API with
sequence-numbered titles and idempotency keys and records, in its own ledger, every
publish the API acknowledged; a publish that fails is retried with the same keys
until acknowledged or the scenario ends (what a well-behaved client does).
:meth:`Deployment.check` then reads every inbox, the sink's log and
``herald replay --verify`` and counts acknowledged-but-lost and duplicated.

Nothing here imports Herald's consumers or API: the harness sees Herald the way a
user does (HTTP, the CLI, the log's server), except that it reads inboxes straight
from the projection for speed (``InboxQueries``, the library the API itself uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from herald.consumers.projection.queries import InboxQueries
from herald.streams.connection import connect
from herald.streams.keys import LIVE_NS, Keys
from herald.streams.server import ServerHandle, die_with_parent_hook, free_port, start_server
from herald.streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
KEY = "chaos-service-key-0123456789"
SECRET = "whsec_" + "Y2hhb3MtY2hhb3MtY2hhb3MtY2hhb3MtMDEyMw=="
PROCESS_STOP_S = 10.0
RETRY_SCHEDULE = "1s,2s,4s,8s,15s"
SENDS_QUIET_S = 5.0  # no new send for this long: delivery is done (retries come sooner)


@dataclass
class Result:
    """One scenario's line."""

    scenario: str
    events: int = 0
    faults: int = 0
    acked: int = 0
    acked_lost: int = 0
    dup_inbox: int = 0
    dup_sends: int = 0
    sends_lost: int = 0
    redelivered: int = 0  # the same webhook-id received again (at least once, by design)
    recovery_s: float = 0.0
    verify: str = "-"
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def expect(self, condition: bool, failure: str) -> None:
        if not condition:
            self.failures.append(failure)

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.failures)
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (f"{self.scenario:<22} events={self.events:<7} faults={self.faults:<3} "
                f"acked_lost={self.acked_lost} dup_inbox={self.dup_inbox} "
                f"dup_sends={self.dup_sends} sends_lost={self.sends_lost} "
                f"recovery_s={self.recovery_s:.1f} verify={self.verify} "
                f"[{self.seconds:.0f}s] {verdict}{notes}")

    def document(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items()}
        out["ok"] = self.ok
        return out


class Sink:
    """A webhook receiver on 127.0.0.1 recording (webhook-id, notification id) pairs."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        self.fail_next = 0  # answer 503 to this many requests (a provider outage)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, headers={"Retry-After": "1"})
        self.received.append((request.headers.get("webhook-id", ""), body["data"]["id"]))
        return web.Response(status=204)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Deployment:
    """Server + API + workers + sink for one scenario (see the module docstring)."""

    def __init__(self, name: str, *, partitions: int = 8, workers: int = 2,
                 roles: Sequence[str] = (),
                 appendfsync: str = "everysec", server_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, lease_ttl: str = "2s") -> None:
        self.name = name
        self.folder = Path(tempfile.mkdtemp(prefix=f"herald-chaos-{name}-"))
        self.partitions = partitions
        self.worker_count = workers
        self.roles = list(roles)
        self.appendfsync = appendfsync
        self.server_args = list(server_args)
        self.extra_env = env or {}
        self.sends_outstanding = 0  # what wait_sends left undecided
        self.lease_ttl = lease_ttl
        self.server: ServerHandle | None = None
        self.port = free_port()
        self.api_port = free_port()
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.sink = Sink()
        self.hook_url = ""
        self.prefix = f"chaos{random.randrange(16**6):06x}"
        self.settings = Settings.from_env({}, redis_url=self.url, prefix=self.prefix,
                                          partitions=partitions, log_level="warning")
        self.redis: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # ------------------------------------------------------------------ processes
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(
            REDIS_URL=self.url, HERALD_PREFIX=self.prefix,
            HERALD_PARTITIONS=str(self.partitions), HERALD_API_KEYS=KEY,
            HERALD_PORT=str(self.api_port), HERALD_HOST="127.0.0.1",
            HERALD_LOG_FORMAT="json", HERALD_LOG_LEVEL="warning",
            HERALD_LEASE_TTL=self.lease_ttl, HERALD_CLAIM_IDLE="3s",
            HERALD_DATA_DIR=str(self.folder / "data"), HERALD_ACCESS_LOG="false",
            HERALD_INBOX_MAX="100000", HERALD_WEBHOOK_ALLOW_CIDRS="127.0.0.1/32",
            # The shipped number of attempts, its delays compressed (1s,5s,30s,2m,10m
            # would outlast a scenario): a send retried late is waited for, not lost.
            HERALD_RETRY_SCHEDULE=RETRY_SCHEDULE,
            PYTHONPATH=str(REPO))
        env.update(self.extra_env)
        return env

    def _spawn(self, *args: str, env: dict[str, str] | None = None,
               module: Sequence[str] = ("herald.cli",)) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{args[0]}-{len(self.workers)}-{time.monotonic_ns()}.log").open("wb")
        return subprocess.Popen([sys.executable, "-m", *module, *args],
                                cwd=REPO, env=env or self.env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent_hook)  # a killed run leaves none

    def start_server(self) -> None:
        self.server = start_server(self.folder / "server", self.appendfsync,
                                   die_with_parent=True, port=self.port,
                                   extra=self.server_args)

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill()

    def freeze_server(self) -> None:
        assert self.server is not None and self.server.process is not None
        self.server.process.send_signal(signal.SIGSTOP)

    def server_pid(self) -> int:
        assert self.server is not None and self.server.process is not None
        return self.server.process.pid

    def start_api(self) -> None:
        self.api = self._spawn("api")

    def start_worker(self, *roles: str, skew_s: float = 0.0,
                     env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A ``herald worker`` (all roles unless named), its clock ``skew_s`` off."""
        args = ["worker", *(("--roles", ",".join(roles)) if roles else ())]
        module = ("tests.chaos.skewed", str(skew_s)) if skew_s else ("herald.cli",)
        proc = self._spawn(*args, env=env, module=module)
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    async def start(self) -> None:
        self.start_server()
        self.hook_url = await self.sink.start()
        self.redis = connect(self.settings)
        self.start_api()
        for _ in range(self.worker_count):
            self.start_worker(*self.roles)
        await self.wait_api()

    async def wait_api(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.api_url + "/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the API did not start (see {self.folder})")

    async def stop(self, keep: bool = False) -> None:
        procs = [p for p in (self.api, *self.workers) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(PROCESS_STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        await self.sink.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        if self.server is not None:
            if self.server.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.server.process.send_signal(signal.SIGCONT)
            self.server.stop()
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ state
    async def tails(self) -> dict[int, str]:
        """Each partition stream's last entry id (what the projector must reach)."""
        keys = Keys(self.prefix)
        out = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.xinfo_stream(keys.stream(p))
            replies = await pipe.execute(raise_on_error=False)
        for p, info in enumerate(replies):
            if isinstance(info, dict):
                last = info.get("last-generated-id") or info.get(b"last-generated-id")
                out[p] = last.decode() if isinstance(last, bytes) else str(last)
        return out

    async def checkpoints(self) -> dict[int, str | None]:
        keys = Keys(self.prefix)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.get(keys.checkpoint(p, LIVE_NS, "projector"))
            replies = await pipe.execute()
        return {p: (v.decode() if v else None) for p, v in enumerate(replies)}

    async def caught_up(self, tails: dict[int, str] | None = None) -> bool:
        tails = tails if tails is not None else await self.tails()
        ckpt = await self.checkpoints()
        return all(_pos(ckpt.get(p)) >= _pos(t) for p, t in tails.items())

    async def wait_caught_up(self, timeout: float,  # noqa: ASYNC109
                             tails: dict[int, str] | None = None
                             ) -> float | None:
        """Seconds until the projector reached ``tails`` (default: now's); None: never."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(Exception):
                if await self.caught_up(tails):
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
        return None

    async def delivery_outstanding(self, channel: str = "webhook") -> int:
        """Deliveries of ``channel`` not decided yet: entries its group has not read or
        not acknowledged (``lag`` + ``pending``, a killed worker's included until they
        are claimed) and jobs waiting in its retry queues for their next attempt."""
        keys = Keys(self.prefix)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.xinfo_groups(keys.stream(p))
                pipe.zcard(keys.retry_queue(channel, p))
                pipe.zcard(keys.retry_queue(channel, p, critical=True))
            replies = await pipe.execute(raise_on_error=False)
        outstanding = 0
        for n in range(0, len(replies), 3):
            groups, queued, critical = replies[n:n + 3]
            for info in groups if isinstance(groups, list) else []:
                name = info.get("name") or info.get(b"name")
                if (name.decode() if isinstance(name, bytes) else name) == channel:
                    outstanding += int(info.get("pending") or 0) + int(info.get("lag") or 0)
            outstanding += sum(int(x) for x in (queued, critical) if isinstance(x, int))
        return outstanding

    async def wait_sends(self, expected: int, timeout: float) -> int:  # noqa: ASYNC109
        """Until the sink received ``expected`` distinct notifications, or nothing new
        arrived for :data:`SENDS_QUIET_S` while no delivery is outstanding (what was
        lost is never sent; what waits for a retry or a claim will be), or time is up.
        Returns the deliveries still outstanding at the end (also kept for
        :meth:`check`'s note)."""
        deadline = time.monotonic() + timeout
        count, changed = -1, time.monotonic()
        while time.monotonic() < deadline:
            distinct = len({nid for _w, nid in self.sink.received})
            if distinct >= expected:
                self.sends_outstanding = 0
                return 0
            if distinct != count:
                count, changed = distinct, time.monotonic()
            elif time.monotonic() - changed > SENDS_QUIET_S:
                with contextlib.suppress(Exception):
                    if await self.delivery_outstanding() == 0:
                        self.sends_outstanding = 0
                        return 0
            await asyncio.sleep(0.2)
        self.sends_outstanding = -1  # unknown unless counted below
        with contextlib.suppress(Exception):
            self.sends_outstanding = await self.delivery_outstanding()
        return self.sends_outstanding

    async def dead_lettered(self, group: str = "webhook") -> int:
        """Entries of ``group`` in the dead-letter streams (each a send not made)."""
        keys = Keys(self.prefix)
        total = 0
        for p in range(self.partitions):
            for _pos, fields in await self.redis.xrange(keys.dead_letters(p)):
                total += fields.get(b"group") == group.encode()
        return total

    def verify(self, timeout: float = 300.0) -> str:
        """``herald replay --verify``: ``identical``, or what it printed."""
        done = subprocess.run([sys.executable, "-m", "herald.cli", "replay", "--verify",
                               "--quiet"], cwd=REPO, env=self.env(), capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode == 0:
            return "identical"
        return f"differs(rc={done.returncode}: {(done.stdout + done.stderr).strip()[-300:]})"

    async def check(self, ledger: Ledger, result: Result, *, sends: bool = True,
                    verify: bool = True) -> None:
        """Count acknowledged-but-lost and duplicated (inboxes, sends); verify replay."""
        queries = InboxQueries(self.redis, self.settings)
        seen: Counter[int] = Counter()
        ids: Counter[str] = Counter()
        for user in ledger.users:
            cursor = None
            for _ in range(10_000):
                page = await queries.page(user, status="all", limit=100, cursor=cursor)
                for item in page.items:
                    ids[item["id"]] += 1
                    title = str(item.get("title", ""))
                    if title.startswith("chaos "):
                        seen[int(title.split()[1])] += 1
                cursor = page.next_cursor
                if not cursor:
                    break
        acked = ledger.acked
        result.acked = len(acked)
        result.acked_lost = sum(1 for seq in acked if seen[seq] == 0)
        result.dup_inbox = sum(1 for n in seen.values() if n > 1) + sum(
            1 for n in ids.values() if n > 1)
        if sends:
            by_nid: dict[str, set[str]] = defaultdict(set)
            deliveries: Counter[str] = Counter()
            for webhook_id, nid in self.sink.received:
                by_nid[nid].add(webhook_id)
                deliveries[webhook_id] += 1
            result.dup_sends = sum(1 for keys in by_nid.values() if len(keys) > 1)
            result.redelivered = sum(n - 1 for n in deliveries.values())
            result.sends_lost = sum(1 for nid in acked.values() if nid not in by_nid)
            if result.sends_lost:
                if self.sends_outstanding:
                    result.notes.append(f"{self.sends_outstanding} deliveries still "
                                        "outstanding (unread, pending or waiting for a "
                                        "retry) when the wait ended")
                with contextlib.suppress(Exception):
                    if dead := await self.dead_lettered():
                        result.notes.append(f"{dead} webhook entries dead-lettered")
        if verify:
            result.verify = await asyncio.to_thread(self.verify)
        result.expect(result.acked_lost == 0, f"{result.acked_lost} acknowledged lost")
        result.expect(result.dup_inbox == 0, f"{result.dup_inbox} duplicated in inboxes")
        result.expect(result.dup_sends == 0, f"{result.dup_sends} sent twice as new sends")
        result.expect(result.sends_lost == 0, f"{result.sends_lost} never sent")
        if verify:
            result.expect(result.verify == "identical", f"replay --verify {result.verify}")


def _pos(position: str | None) -> tuple[int, int]:
    if not position:
        return (0, 0)
    ms, _, seq = position.partition("-")
    return (int(ms), int(seq or 0))


class Ledger:
    """What the API acknowledged: sequence number → notification id."""

    def __init__(self, users: int) -> None:
        self.users = [f"user-{i:05d}" for i in range(users)]
        self.acked: dict[int, str] = {}
        self.failures: Counter[str] = Counter()  # refused publishes by status (retried)
        self.retry_after_seen = 0


class Loader:
    """Publishes ``events`` notifications through the API in batches; see the module
    docstring. ``channels`` names where they go besides the inbox (``in_app``, always
    named: a notification without it makes no inbox item)."""

    def __init__(self, deployment: Deployment, ledger: Ledger, *, batch: int = 100,
                 channels: Sequence[str] = ("webhook",), run: str = "") -> None:
        self.d = deployment
        self.ledger = ledger
        self.batch = batch
        self.channels = ["in_app", *channels] if channels else []
        self.run = run or f"{random.randrange(16**6):06x}"
        self.published = 0  # sequence numbers handed out
        self.stop = asyncio.Event()

    async def setup_profiles(self) -> None:
        """Every user's webhook endpoint is the sink (retried until the API answers)."""
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
            for user in self.ledger.users:
                body = {"webhook_url": self.d.hook_url, "webhook_secret": SECRET}
                for _ in range(100):
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with s.put(f"{self.d.api_url}/v1/users/{user}/profile",
                                         json=body) as r:
                            if r.status < 300:
                                break
                    await asyncio.sleep(0.2)

    async def publish(self, events: int, *, seconds: float, rate: float | None = None) -> None:
        """Publish ``events`` (bounded by ``seconds``), retrying refused batches."""
        deadline = time.monotonic() + seconds
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"},
                                         timeout=timeout) as session:
            while self.published < events and time.monotonic() < deadline \
                    and not self.stop.is_set():
                first = self.published
                n = min(self.batch, events - first)
                self.published += n
                started = time.monotonic()
                await self._send(session, list(range(first, first + n)), deadline)
                if rate:
                    await asyncio.sleep(max(0.0, n / rate - (time.monotonic() - started)))

    async def _send(self, session: aiohttp.ClientSession, seqs: list[int],
                    deadline: float) -> None:
        users = self.ledger.users
        extra = {"channels": self.channels} if self.channels else {}
        items = [{"user": users[seq % len(users)], "title": f"chaos {seq}",
                  "idempotency_key": f"chaos-{self.run}-{seq}", **extra} for seq in seqs]
        while time.monotonic() < deadline + 30:  # an unacknowledged batch is retried
            try:
                async with session.post(f"{self.d.api_url}/v1/notifications/batch",
                                        json={"notifications": items}) as r:
                    body = await r.read()
                    if r.status in (200, 201, 207):
                        results = orjson.loads(body)["results"]
                        for seq, res in zip(seqs, results, strict=True):
                            if isinstance(res, dict) and res.get("id"):
                                self.ledger.acked[seq] = res["id"]
                        return
                    self.ledger.failures[str(r.status)] += 1
                    if r.headers.get("Retry-After"):
                        self.ledger.retry_after_seen += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.ledger.failures[type(exc).__name__] += 1
            await asyncio.sleep(0.2)


async def measure_recovery(d: Deployment, timeout: float = 60.0) -> float:  # noqa: ASYNC109
    """Seconds from now until the projector reaches the log's tail as it is now."""
    tails = None
    for _ in range(100):
        with contextlib.suppress(Exception):
            tails = await d.tails()
            break
        await asyncio.sleep(0.1)
    waited = await d.wait_caught_up(timeout, tails)
    return waited if waited is not None else float("inf")
