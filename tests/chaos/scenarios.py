"""The chaos scenarios; each returns one :class:`~tests.chaos.harness.Result`.

``quick`` (what ``make test`` runs) shrinks loads and fault counts, never the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.chaos.harness import Deployment, Ledger, Loader, Result, measure_recovery

Scenario = Callable[[bool, random.Random], Awaitable[Result]]


async def _recover_after(d: Deployment, recoveries: list[float],
                         since: float | None = None) -> None:
    """Record how long the projector takes to reach the log's tail as of now (plus the
    time since ``since``, a monotonic instant such as the fault's)."""
    before = 0.0 if since is None else time.monotonic() - since
    recoveries.append(before + await measure_recovery(d, timeout=120))


async def worker_kills(quick: bool, rnd: random.Random) -> Result:
    """kill -9 a random worker again and again during load; the harness restarts it."""
    events, kills, workers = (8_000, 6, 2) if quick else (100_000, 20, 3)
    result = Result("worker kills", events=events)
    d = Deployment("worker-kills", workers=workers)
    try:
        await d.start()
        ledger = Ledger(users=100 if quick else 1000)
        loader = Loader(d, ledger)
        await loader.setup_profiles()
        rate = 1_600 if quick else 4_000
        load = asyncio.create_task(loader.publish(events, seconds=events / rate * 4,
                                                  rate=rate))
        down = 0.25  # the mean pause below, before the victim's replacement starts
        gap = max(0.05, events / rate / (kills + 1) - down)
        recoveries: list[float] = []
        watchers = []
        while result.faults < kills and not load.done():
            await asyncio.sleep(gap * rnd.uniform(0.5, 1.5))
            victim = rnd.choice(d.workers)
            d.kill_worker(victim)
            d.workers.remove(victim)
            result.faults += 1
            watchers.append(asyncio.create_task(_recover_after(d, recoveries)))
            await asyncio.sleep(rnd.uniform(0.0, 2 * down))  # down a moment, then back
            d.start_worker()
        await load
        await asyncio.gather(*watchers)
        result.recovery_s = max(recoveries, default=0.0)
        result.expect(result.faults >= kills, f"only {result.faults} kills before the load ended")
        result.expect(len(ledger.acked) == events,
                      f"{events - len(ledger.acked)} publishes never acknowledged")
        await d.wait_caught_up(120)
        # 100,000 webhooks through one local receiver take minutes; bounded all the same
        await d.wait_sends(len(ledger.acked), 120 if quick else 300)
        await d.check(ledger, result)
    finally:
        await d.stop(keep=not result.ok)
    return result


async def server_kills(quick: bool, rnd: random.Random, appendfsync: str = "always"
                       ) -> Result:
    """kill -9 the server during load and start it again on the same folder and port.

    ``always``: nothing acknowledged may be lost. ``everysec``: the loss window is
    measured (up to a second of acknowledged writes), not failed on. API and workers
    must answer 503 with Retry-After meanwhile and recover without a restart."""
    events, kills = (4_000, 3) if quick else (40_000, 6)
    result = Result(f"server kills ({appendfsync})", events=events)
    d = Deployment(f"server-kills-{appendfsync}", workers=2, appendfsync=appendfsync)
    try:
        await d.start()
        ledger = Ledger(users=100 if quick else 500)
        loader = Loader(d, ledger)
        await loader.setup_profiles()
        rate = 1_000 if quick else 2_000
        load = asyncio.create_task(loader.publish(events, seconds=events / rate * 6,
                                                  rate=rate))
        gap = events / rate / (kills + 1)
        recoveries: list[float] = []
        watchers = []
        ready_false = 0
        while result.faults < kills and not load.done():
            await asyncio.sleep(gap * rnd.uniform(0.6, 1.4))
            d.kill_server()
            killed_at = time.monotonic()
            result.faults += 1
            await asyncio.sleep(rnd.uniform(0.3, 1.0))
            ready_false += await _readyz_refuses(d)
            d.start_server()
            # the load goes on: recovery is the projector reaching the tail as of the
            # restart, measured beside the next faults rather than waited for
            watchers.append(asyncio.create_task(_recover_after(d, recoveries, killed_at)))
        await load
        await asyncio.gather(*watchers)
        result.recovery_s = max(recoveries, default=0.0)
        result.expect(result.faults >= kills, f"only {result.faults} kills before the load ended")
        result.expect(ready_false == result.faults, f"/readyz answered ready during "
                      f"{result.faults - ready_false} outage(s)")
        result.expect(ledger.retry_after_seen > 0 or not ledger.failures,
                      "refused publishes came without Retry-After")
        result.notes.append(f"refused publishes meanwhile: {dict(ledger.failures)}")
        await d.wait_caught_up(120)
        await d.wait_sends(len(ledger.acked), 120)
        await d.check(ledger, result)
        if appendfsync != "always":  # measured, documented: not a failure
            lost = result.acked_lost
            result.failures = [f for f in result.failures
                               if "acknowledged lost" not in f and "never sent" not in f]
            result.notes.append(f"everysec loss window: {lost} acknowledged lost of "
                                f"{result.acked} in {result.faults} kills")
    finally:
        await d.stop(keep=not result.ok)
    return result


async def _readyz_refuses(d: Deployment) -> int:
    """1 when /readyz answers 503 with Retry-After while the server is down."""
    import aiohttp

    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s, \
                s.get(d.api_url + "/readyz") as r:
            return int(r.status == 503 and "Retry-After" in r.headers)
    return 0


def _command_ends(data: bytes) -> list[int]:
    """Offsets where each complete RESP command of an append-only file ends."""
    ends, pos = [], 0
    try:
        while pos < len(data) and data[pos:pos + 1] == b"*":
            nl = data.index(b"\r\n", pos)
            count, pos = int(data[pos + 1:nl]), nl + 2
            for _ in range(count):
                nl = data.index(b"\r\n", pos)
                pos = nl + 2 + int(data[pos + 1:nl]) + 2
            if pos > len(data):
                break
            ends.append(pos)
    except ValueError:
        pass
    return ends


def _incr_file(d: Deployment) -> Path:
    folder = d.folder / "server" / "appendonlydir"
    return max(folder.glob("*.incr.aof"), key=lambda f: int(f.name.split(".")[-3]))


async def power_loss(quick: bool, rnd: random.Random, appendfsync: str = "always") -> Result:
    """Lose what the server had not fsynced: freeze it (SIGSTOP), cut its append-only
    file back to a random offset at or after the last one surely on disk, kill it,
    start it again. ``always``: every acknowledged publish was fsynced before the
    acknowledgement, so the cut may start right after the last acknowledged write;
    ``everysec``: after what was in the file a second (one fsync period) before the
    freeze — the loss window is measured. Either way never below what the file held
    when retention last wrote a snapshot or segment: it waits for an fsync first
    (WAITAOF, streams/durability.py ``fence``), so that much is surely on disk."""
    events, cuts = (3_000, 2) if quick else (30_000, 5)
    result = Result(f"power loss ({appendfsync})", events=events)
    d = Deployment(f"power-loss-{appendfsync}", workers=2, appendfsync=appendfsync)
    sizes: list[tuple[float, float, str, int]] = []  # monotonic, wall, file, size
    try:
        await d.start()
        ledger = Ledger(users=100 if quick else 500)
        loader = Loader(d, ledger)
        await loader.setup_profiles()
        rate = 800 if quick else 1_500
        load = asyncio.create_task(loader.publish(events, seconds=events / rate * 6,
                                                  rate=rate))

        async def sample() -> None:
            while True:
                with contextlib.suppress(OSError, ValueError):
                    incr = _incr_file(d)
                    sizes.append((time.monotonic(), time.time(), incr.name,
                                  incr.stat().st_size))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        gap = events / rate * 0.7 / cuts
        cut_bytes = []
        while result.faults < cuts and not load.done():
            await asyncio.sleep(gap * rnd.uniform(0.7, 1.3))
            d.freeze_server()
            frozen_at = time.monotonic()
            await asyncio.sleep(0.5)  # answers already on their way reach the ledger
            incr = _incr_file(d)
            data = incr.read_bytes()
            ends = _command_ends(data)
            if appendfsync == "always":
                # the last acknowledged, in the order of their answers (a publish refused
                # during an outage is sent again later with its old sequence number)
                last = [nid.encode() for nid in list(ledger.acked.values())[-1000:]]
                found = max((data.rfind(nid) for nid in last), default=-1)
                lower = next((e for e in ends if e > found), len(data)) if found >= 0 else 0
            else:  # everysec: an fsync ran in the last second, so what was in the file
                # a second before the freeze is on disk (a slow disk may lag more)
                synced = [size for at, _w, name, size in sizes
                          if at <= frozen_at - 1.0 and name == incr.name]
                lower = synced[-1] if synced else 0
            lower = max(lower, _fenced_size(d, incr.name, sizes))
            cut = rnd.randint(min(lower, len(data)), len(data))
            d.kill_server()
            with incr.open("r+b") as f:
                f.truncate(cut)
            cut_bytes.append(len(data) - cut)
            result.faults += 1
            d.start_server()
            ahead = await _checkpoints_past_tail(d)
            result.expect(not ahead, f"checkpoint past the log's tail after a cut: {ahead}")
        await load
        sampler.cancel()
        result.expect(result.faults >= cuts, f"only {result.faults} cuts before the load ended")
        result.notes.append(f"bytes cut per fault: {cut_bytes}")
        await d.wait_caught_up(120)
        await d.wait_sends(len(ledger.acked), 60)
        await d.check(ledger, result)
        if appendfsync != "always":
            lost = result.acked_lost
            result.failures = [f for f in result.failures
                               if "acknowledged lost" not in f and "never sent" not in f]
            result.notes.append(f"everysec loss window: {lost} acknowledged lost of "
                                f"{result.acked} in {result.faults} power losses")
    finally:
        await d.stop(keep=not result.ok)
    return result


def _failures(out: str, limit: int = 3000) -> str:
    """Schemathesis's FAILURES section (each failing operation and the request that
    reproduces it), else the end of its output."""
    start = out.find("FAILURES")
    return (out[start:start + limit] if start >= 0 else out[-800:]).strip()


def _fenced_size(d: Deployment, name: str, sizes: list[tuple[float, float, str, int]]) -> int:
    """The size of append-only file ``name`` when retention last wrote a file (the
    first sample taken after it; it had waited for an fsync of everything before)."""
    written = [f.stat().st_mtime for f in (d.folder / "data").rglob("*") if f.is_file()]
    if not written:
        return 0
    after = [size for _at, wall, file, size in sizes if file == name and wall >= max(written)]
    return after[0] if after else sys.maxsize  # written since the last sample: all of it


async def _checkpoints_past_tail(d: Deployment) -> list[int]:
    for _ in range(100):
        with contextlib.suppress(Exception):
            tails, ckpt = await d.tails(), await d.checkpoints()
            return [p for p, c in ckpt.items()
                    if c and p in tails and _order(c) > _order(tails[p])]
        await asyncio.sleep(0.1)
    return []


def _order(position: str) -> tuple[int, int]:
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)


async def power_loss_everysec(quick: bool, rnd: random.Random) -> Result:
    return await power_loss(quick, rnd, "everysec")


async def clock_skew(quick: bool, rnd: random.Random) -> Result:
    """Schedulers whose clocks are 5 minutes fast and 5 minutes slow share the
    partitions: every reminder fires once, at its due time by the server's clock."""
    reminders = 100 if quick else 500
    result = Result("clock skew (±5 min)", events=reminders)
    d = Deployment("clock-skew", workers=1, roles=("projector",))
    try:
        await d.start()
        for skew in (300.0, -300.0):
            d.start_worker("scheduler", skew_s=skew)
        result.faults = 2
        ledger = Ledger(users=50)
        seconds, micros = await d.redis.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        due = {seq: now + 3000 + rnd.randrange(0, 4000) for seq in range(reminders)}
        acked = await _publish_scheduled(d, ledger, due)
        result.expect(acked == reminders, f"{reminders - acked} reminders not acknowledged")
        await asyncio.sleep((max(due.values()) - now) / 1000 + 3)
        await d.wait_caught_up(60)
        fired = await _fired_positions(d, ledger)
        early = [s for s, at in fired.items() if at and at[0] < due[s]]
        late = [s for s, at in fired.items() if at and at[0] > due[s] + 2000]
        twice = [s for s, at in fired.items() if len(at) > 1]
        never = [s for s in due if not fired.get(s)]
        lateness = [at[0] - due[s] for s, at in fired.items() if at]
        result.notes.append(f"lateness ms max {max(lateness, default=0)}")
        result.acked, result.acked_lost, result.dup_inbox = acked, len(never), len(twice)
        result.expect(not early, f"{len(early)} fired before due by the server's clock")
        result.expect(not late, f"{len(late)} fired more than 2 s late")
        result.expect(not twice, f"{len(twice)} fired twice")
        result.expect(not never, f"{len(never)} never fired")
        result.verify = await asyncio.to_thread(d.verify)
        result.expect(result.verify == "identical", f"replay --verify {result.verify}")
    finally:
        await d.stop(keep=not result.ok)
    return result


async def _publish_scheduled(d: Deployment, ledger: Ledger, due: dict[int, int]) -> int:
    import aiohttp

    from tests.chaos.harness import KEY

    items = [{"user": ledger.users[s % len(ledger.users)], "title": f"chaos {s}",
              "deliver_at": _rfc3339(at), "idempotency_key": f"skew-{s}"}
             for s, at in due.items()]
    acked = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        for i in range(0, len(items), 100):
            async with s.post(d.api_url + "/v1/notifications/batch",
                              json={"notifications": items[i:i + 100]}) as r:
                for res in (await r.json())["results"]:
                    acked += int(res.get("status") in (200, 201))
    return acked


def _rfc3339(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


async def _fired_positions(d: Deployment, ledger: Ledger) -> dict[int, list[int]]:
    """Sequence number → the log times (ms) of the created events shown for it."""
    from herald.consumers.projection.queries import InboxQueries

    queries = InboxQueries(d.redis, d.settings)
    out: dict[int, list[int]] = {}
    for user in ledger.users:
        page = await queries.page(user, status="all", limit=100)
        for item in page.items:
            title = str(item.get("title", ""))
            if title.startswith("chaos "):
                out.setdefault(int(title.split()[1]), []).append(
                    int(str(item["position"]).split("-")[0]))
    return out


async def memory_full(quick: bool, rnd: random.Random) -> Result:
    """The server reaches maxmemory (noeviction) under load: publishes are refused with
    507, nothing half-written; when memory frees, everything flows again."""
    events = 3_000 if quick else 20_000
    result = Result("memory full", events=events, faults=1)
    d = Deployment("memory-full", workers=2)
    try:
        await d.start()
        ledger = Ledger(users=50 if quick else 200)
        loader = Loader(d, ledger)
        await loader.setup_profiles()
        used = int((await d.redis.info("memory"))["used_memory"])
        await d.redis.config_set("maxmemory", used + (2 if quick else 8) * 1024 * 1024)
        load = asyncio.create_task(loader.publish(events, seconds=120, rate=1_500))
        started = time.monotonic()
        while time.monotonic() - started < 60:
            if ledger.failures.get("507"):
                break
            await asyncio.sleep(0.2)
        refused = ledger.failures.get("507", 0)
        result.expect(refused > 0, "the store never filled up (no 507)")
        await asyncio.sleep(1.0)  # full for a while: workers' writes are refused too
        await d.redis.config_set("maxmemory", 0)
        freed = time.monotonic()
        await load
        waited = await d.wait_caught_up(120)
        result.recovery_s = (time.monotonic() - freed) if waited is not None else float("inf")
        result.notes.append(f"refused while full: {dict(ledger.failures)}")
        await d.wait_sends(len(ledger.acked), 120)
        await d.check(ledger, result)
    finally:
        await d.stop(keep=not result.ok)
    return result


async def network(quick: bool, rnd: random.Random) -> Result:
    """A proxy between the API (and one worker) and the server delays, stalls and resets
    the traffic; another worker reaches the server directly. Every request path answers
    or fails within its documented time, nothing hangs, the cut-off worker's partitions
    move to the other one and its late writes are refused (fenced)."""
    from tests.chaos.proxy import Proxy

    events = 3_000 if quick else 20_000
    stall_s = 6.0 if quick else 15.0
    result = Result("stalled network", events=events)
    request_timeout, redis_timeout = 4.0, 2.0
    env = {"HERALD_REQUEST_TIMEOUT": f"{request_timeout:g}s",
           "HERALD_REDIS_TIMEOUT": f"{redis_timeout:g}s"}
    d = Deployment("network", workers=0, env=env)
    proxy = Proxy(d.port)
    try:
        d.start_server()
        d.hook_url = await d.sink.start()
        d.redis = __import__("herald.streams.connection", fromlist=["connect"]).connect(
            d.settings)
        await proxy.start()
        behind = {**d.env(), "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
        d.api = d._spawn("api", env=behind)
        d.start_worker(env=behind)  # cut off with the API
        d.start_worker()  # reaches the server directly
        await d.wait_api()
        ledger = Ledger(users=50 if quick else 200)
        loader = Loader(d, ledger)
        await loader.setup_profiles()
        load = asyncio.create_task(loader.publish(events, seconds=events / 500 * 4 + 60,
                                                  rate=500))
        bound = request_timeout + 1.5
        slow: list[str] = []

        async def probe_all(phase: str) -> None:
            for method, path in (("GET", "/healthz"), ("GET", "/readyz"),
                                 ("GET", f"/v1/users/{ledger.users[0]}/inbox"),
                                 ("POST", "/v1/notifications"),
                                 ("GET", f"/v1/users/{ledger.users[1]}/events")):
                status, took = await _probe(d, method, path, bound + 5)
                limit = 1.0 if path == "/healthz" else bound
                if took > limit:
                    slow.append(f"{phase} {method} {path}: {status} after {took:.1f}s")

        await asyncio.sleep(2)
        proxy.set("delay", 0.2)
        result.faults += 1
        await probe_all("delay")
        await asyncio.sleep(2)
        proxy.set("stall")
        result.faults += 1
        stalled_at = time.monotonic()
        await probe_all("stall")
        await asyncio.sleep(max(0.0, stall_s - (time.monotonic() - stalled_at)))
        proxy.set("pass")
        proxy.reset()
        result.faults += 1
        resumed = time.monotonic()
        await probe_all("after")
        await load
        waited = await d.wait_caught_up(120)
        result.recovery_s = (time.monotonic() - resumed) if waited is not None else float("inf")
        result.expect(not slow, "answered late: " + "; ".join(slow))
        result.notes.append(f"refused meanwhile: {dict(ledger.failures)}")
        await d.wait_sends(len(ledger.acked), 120)
        await d.check(ledger, result)
    finally:
        await proxy.stop()
        await d.stop(keep=not result.ok)
    return result


async def _probe(d: Deployment, method: str, path: str, cap: float) -> tuple[int, float]:
    """(status or 0 for no answer, seconds) of one request, given up after ``cap``."""
    import aiohttp

    from tests.chaos.harness import KEY

    started = time.monotonic()
    body = {"user": "probe", "title": "probe"} if method == "POST" else None
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"},
                                         timeout=aiohttp.ClientTimeout(total=cap)) as s, \
                s.request(method, d.api_url + path, json=body) as r:
            if path.endswith("/events") and r.status == 200:
                await r.content.readline()  # the stream started: it answered
            return r.status, time.monotonic() - started
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, time.monotonic() - started


async def poison_and_bursts(quick: bool, rnd: random.Random) -> Result:
    """Undecodable entries appended straight into the log, a worker paused past the
    claim time (its entries redelivered to the others, its late writes fenced), and
    thousands of live clients reconnecting at once — while publishes flow."""
    import resource

    import psutil

    events, poison, clients = (3_000, 50, 500) if quick else (20_000, 500, 10_000)
    result = Result("poison and bursts", events=events)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    d = Deployment("poison-bursts", workers=2)
    try:
        await d.start()
        ledger = Ledger(users=max(50, clients // 20))
        loader = Loader(d, ledger)
        await loader.setup_profiles()
        load = asyncio.create_task(loader.publish(events, seconds=events / 500 * 4 + 60,
                                                  rate=500))
        # 1. poison: bytes no decoder accepts, straight into the partition streams
        keys = __import__("herald.streams.keys", fromlist=["Keys"]).Keys(d.prefix)
        for i in range(poison):
            await d.redis.xadd(keys.stream(i % d.partitions),
                               {"e": rnd.randbytes(rnd.randrange(1, 64))})
        result.faults += poison
        # 2. a worker paused past the claim time, then resumed
        victim = d.workers[0]
        victim.send_signal(__import__("signal").SIGSTOP)
        await asyncio.sleep(6)  # > lease TTL (2 s) and claim idle (3 s)
        victim.send_signal(__import__("signal").SIGCONT)
        result.faults += 1
        # 3. a reconnect storm of live clients
        api = psutil.Process(d.api.pid) if d.api else None
        rss_before = api.memory_info().rss if api else 0
        opened, failed, took = await _storm(d, ledger, clients)
        rss_after = api.memory_info().rss if api else 0
        result.faults += 1
        result.notes.append(f"{clients} live clients reconnected at once: {opened} ready, "
                            f"{failed} refused, in {took:.1f}s; API memory "
                            f"+{(rss_after - rss_before) / 2**20:.0f} MiB")
        result.expect(opened + failed == clients, "live clients left hanging")
        result.expect(failed <= clients // 10, f"{failed} of {clients} live clients refused")
        result.expect(rss_after - rss_before < 1024 * 2**20, "API memory grew past 1 GiB")
        await load
        waited = await d.wait_caught_up(120)
        result.expect(waited is not None, "the projector did not catch up")
        letters = 0
        for p in range(d.partitions):
            for _id, fields in await d.redis.xrange(keys.dead_letters(p), count=10_000):
                letters += fields.get(b"group") == b"projector"
        result.notes.append(f"projector dead letters {letters} of {poison} poison entries")
        result.expect(letters == poison, f"{letters} dead letters for {poison} poison entries")
        await d.wait_sends(len(ledger.acked), 120)
        await d.check(ledger, result)
    finally:
        await d.stop(keep=not result.ok)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return result


async def _storm(d: Deployment, ledger: Ledger, clients: int) -> tuple[int, int, float]:
    """Open ``clients`` SSE streams, wait for each one's first event, drop them all,
    open them all again at once; (ready, never got through within 60 s, seconds) of the
    second wave."""
    import aiohttp

    from tests.chaos.harness import KEY

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"Authorization": f"Bearer {KEY}"}) as s:

        async def one(i: int) -> bool:
            """One client: refused with 429 or 503, it comes back after Retry-After (with
            jitter), as Herald's browser client does; False when it never got through."""
            user = ledger.users[i % len(ledger.users)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    async with s.get(f"{d.api_url}/v1/users/{user}/events") as r:
                        if r.status in (429, 503):
                            wait = float(r.headers.get("Retry-After", "1"))
                            await asyncio.sleep(wait * random.uniform(1.0, 2.0))
                            continue
                        if r.status != 200:
                            return False
                        while True:  # until the first event (not the retry hint)
                            line = await r.content.readline()
                            if not line or line.startswith(b"event:"):
                                return bool(line)
                except (aiohttp.ClientError, OSError, TimeoutError):
                    return False
            return False

        await asyncio.gather(*(one(i) for i in range(min(clients, 200))))  # warm
        started = time.monotonic()
        done = await asyncio.gather(*(one(i) for i in range(clients)))
        return sum(done), clients - sum(done), time.monotonic() - started


TOKEN_SECRET = "chaos-token-secret-" + "0123456789abcdef" * 3


async def hostile_input(quick: bool, rnd: random.Random) -> Result:
    """Schemathesis (every check, stateful phase) against the real API process; a
    hypothesis fuzzer over every decoder and validator that takes outside bytes; a BOLA
    matrix: a user's token against another user's every route. 0 5xx, 0 tracebacks in
    bodies, 0 cross-user reads or writes."""
    import tempfile as _tempfile

    from tests.api.test_schemathesis import clean, schemathesis

    result = Result("hostile input")
    d = Deployment("hostile", workers=1, env={"HERALD_TOKEN_SECRET": TOKEN_SECRET,
                                              "HERALD_API_RATE_USER": "100000/s",
                                              "HERALD_REQUEST_TIMEOUT": "5s"})
    try:
        await d.start()
        ledger = Ledger(users=2)
        loader = Loader(d, ledger, channels=())
        await loader.publish(20, seconds=30)
        with _tempfile.TemporaryDirectory() as tmp:
            code, out = await schemathesis(d.api_url, __import__(
                "tests.chaos.harness", fromlist=["KEY"]).KEY, Path(tmp),
                "--max-examples", "5" if quick else "25", limit_s=90 if quick else 600)
        result.faults += 1
        (d.folder / "schemathesis.log").write_text(out)  # kept when the scenario fails
        result.expect(code == 0 and clean(out), "schemathesis: " + _failures(out))
        found = await asyncio.to_thread(_fuzz_decoders, 300 if quick else 5000)
        result.faults += 1
        result.expect(not found, f"decoders raised unexpected errors: {found[:5]}")
        leaks = await _bola(d, ledger)
        result.faults += 1
        result.expect(not leaks, f"cross-user access: {leaks[:5]}")
        result.events = len(ledger.acked)
        result.expect(len(ledger.acked) == 20, f"seeding failed: {dict(ledger.failures)}")
        result.notes.append(f"schemathesis ({'5' if quick else '25'} examples per operation, "
                            "stateful), decoder fuzzing and a BOLA matrix over "
                            f"{_bola.routes} routes")
    finally:
        await d.stop(keep=not result.ok)
    return result


def _fuzz_decoders(examples: int) -> list[str]:
    """Feed random bytes and text to every decoder of outside input; any exception other
    than the decoder's documented refusal is a finding."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from herald.api.auth import Authenticator
    from herald.streams import codec, positions
    from herald.streams.errors import CodecError, HeraldError
    from herald.streams.settings import Settings as HeraldSettings

    found: list[str] = []
    auth = Authenticator(HeraldSettings.from_env({}, token_secret=TOKEN_SECRET,
                                                 api_keys=("k" * 24,)))
    refusals: tuple[type[BaseException], ...] = (CodecError, HeraldError, ValueError)

    def check(name: str, call: Callable[[], object], allowed: tuple[type[BaseException], ...]
              ) -> None:
        try:
            call()
        except allowed:
            pass
        except Exception as exc:  # the finding
            found.append(f"{name}: {type(exc).__name__}: {exc}")

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=512), st.text(max_size=200))
    def fuzz(raw: bytes, text: str) -> None:
        check("codec.decode", lambda: codec.decode(raw), (CodecError,))
        check("positions.parse", lambda: positions.parse(text), refusals)
        check("auth.authenticate", lambda: auth.authenticate(f"Bearer {text}"),
              (HeraldError, *_auth_refusals()))

    fuzz()
    return found


def _auth_refusals() -> tuple[type[BaseException], ...]:
    from herald.api.errors import Problem

    return (Problem,)


async def _bola(d: Deployment, ledger: Ledger) -> list[str]:
    """Every route with a user or notification id, called with user A's token on user
    B's resources: never a 2xx, never B's data in the body."""
    import aiohttp

    from herald.api.auth import mint_token

    a, b = ledger.users[0], ledger.users[1]
    token = mint_token(TOKEN_SECRET, a, 600)
    b_seqs = [seq for seq in ledger.acked if seq % 2 == 1]  # user B's (round-robin)
    b_ids = [ledger.acked[seq] for seq in b_seqs]
    secret = f"chaos {b_seqs[0]}" if b_seqs else "\x00never"  # B's content
    leaks = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        async with s.get(d.api_url + "/openapi.json") as r:
            doc = await r.json()
        for path, ops in doc["paths"].items():
            if "{user}" not in path and "{id}" not in path:
                continue
            for method in ops:
                if method not in ("get", "post", "put", "delete", "patch"):
                    continue
                url = path.replace("{user}", b).replace("{id}", b_ids[0] if b_ids else "x")
                url = url.replace("{cancel_key}", "k")
                if "/events" in url or url.endswith("/ws"):
                    continue  # streams: tests/api/live refuse them the same way
                _bola.routes += 1
                async with s.request(method.upper(), d.api_url + url, json={}) as r:
                    body = await r.text()
                    if r.status < 300 or secret in body or "Traceback" in body:
                        leaks.append(f"{method.upper()} {path}: {r.status}")
    return leaks


async def server_kills_everysec(quick: bool, rnd: random.Random) -> Result:
    return await server_kills(quick, rnd, "everysec")


SCENARIOS: dict[str, Scenario] = {
    "worker-kills": worker_kills,
    "server-kills": server_kills,
    "server-kills-everysec": server_kills_everysec,
    "power-loss": power_loss,
    "power-loss-everysec": power_loss_everysec,
    "clock-skew": clock_skew,
    "memory-full": memory_full,
    "network": network,
    "poison-bursts": poison_and_bursts,
    "hostile-input": hostile_input,
}


_bola.routes = 0  # type: ignore[attr-defined]
