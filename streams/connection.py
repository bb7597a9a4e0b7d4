"""The Redis connection: one pool per process, standalone or Cluster.

Responses are bytes (``decode_responses=False``: the log holds msgpack) over
RESP2 (``protocol=2``), set explicitly. Connection errors are retried with
back-off by the client; callers translate what is left where they call Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

try:  # the hiredis reader's "no whole reply yet" value, as redis-py configures it
    from redis._parsers.hiredis import NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - another redis-py layout: Batch reads per reply
    NOT_ENOUGH_DATA = None

from herald.streams.errors import NoServerError, SettingsError
from herald.streams.server import running_server_url
from herald.streams.settings import Settings

# What "Redis is unavailable" looks like to a loop: retry these after a back-off.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, OSError)
RETRY_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 5.0  # longest TCP connect (HERALD_REDIS_TIMEOUT if shorter)
POOL_WAIT_S = 5.0  # longest wait for a pooled connection before ConnectionError
RETRY_ERRORS = (redis.ConnectionError, redis.TimeoutError)
# What a client sees while a server restarts or a Cluster fails over or moves slots:
# "try again soon" (HTTP 503 with Retry-After), never a bug.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError, redis.exceptions.ReadOnlyError,
    redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError,
)
# The store could not serve (down, failing over, loading, full): no entry's fault, so
# such a failure never counts toward an entry's delivery limit (consumers/group/runtime.py).
STORE_ERRORS: tuple[type[Exception], ...] = (
    *TRANSIENT_ERRORS, OSError, redis.exceptions.OutOfMemoryError,
    redis.exceptions.BusyLoadingError,
)
BIG_ARG = 8192  # bytes: a bigger value is sent as its own buffer, not copied


class HiredisPackConnection(aioredis.Connection):
    """A TCP connection that packs commands with hiredis (C), as redis-py's sync client
    does; its asyncio client packs in Python, which cost a pipeline of small commands
    (the producer's XADDs) several µs per command. A command carrying a big value (a
    projector batch) keeps redis-py's packing, which sends the value without copying
    it (measured: replay 54-55k → 57-59k events/s)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        for arg in args:
            if type(arg) is bytes and len(arg) > BIG_ARG:
                return super().pack_command(*args)
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # memoryview, bytearray, or a bad value: redis-py decides
            return super().pack_command(*args)


class HiredisPackSSLConnection(HiredisPackConnection, aioredis.SSLConnection):
    """:class:`HiredisPackConnection` over TLS (``rediss://``)."""


def tls_options(settings: Settings, url: str) -> dict[str, Any]:
    """The TLS keyword arguments of a ``rediss://`` URL (CA, client certificate and key:
    ``HERALD_REDIS_CA``/``_CERT``/``_KEY``); the server's certificate and name are
    always verified. SettingsError for a plaintext URL with
    ``HERALD_REDIS_REQUIRE_TLS=true``."""
    secure = url.lower().startswith("rediss://")
    if settings.redis_require_tls and not secure:
        raise SettingsError("HERALD_REDIS_REQUIRE_TLS=true refuses a plaintext Redis URL: "
                            "use rediss:// (the server is " + _where(url) + ")")
    if not secure:
        return {}
    out: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if settings.redis_ca:
        out["ssl_ca_certs"] = settings.redis_ca
    if settings.redis_cert:
        out["ssl_certfile"] = settings.redis_cert
        out["ssl_keyfile"] = settings.redis_key
    return out


def _where(url: str) -> str:
    """host:port of a URL, without credentials."""
    rest = url.split("://", 1)[-1]
    return rest.rpartition("@")[2].split("/", 1)[0]


class Batch:
    """Commands sent in one round trip, replies as the server sent them.

    The hot paths' pipeline (the producer's appends, the projector's apply calls): it
    takes ``execute_command(*args)`` like a redis-py pipeline, and ``execute()`` returns
    one reply per command — raw (no reply callbacks: XADD gives bytes, a script its
    own reply) and error replies as :class:`redis.ResponseError` values, never raised.
    It costs about a third of redis-py's pipeline per command (measured, 100 XADDs
    per round trip: 18 → 6.3 µs of client CPU per command), which keeps a queue and
    parses each reply through its callbacks. A connection error is retried like
    redis-py's pipeline does (the whole batch, with the client's back-off), then raised.
    On a Cluster client it is a plain redis-py pipeline.
    """

    __slots__ = ("commands", "options", "redis")

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.commands: list[tuple[Any, ...]] = []
        self.options: dict[int, dict[str, Any]] = {}  # Cluster routing (target_nodes)

    def execute_command(self, *args: Any, **options: Any) -> None:
        """Queue a command; ``target_nodes=`` routes one without a key (Cluster only)."""
        if options:
            self.options[len(self.commands)] = options
        self.commands.append(args)

    def __len__(self) -> int:
        return len(self.commands)

    async def execute(self) -> list[Any]:
        if not self.commands:
            return []
        if not isinstance(self.redis, aioredis.Redis):  # Cluster: route per command
            async with self.redis.pipeline(transaction=False) as pipe:
                for i, args in enumerate(self.commands):
                    pipe.execute_command(*args, **self.options.get(i, {}))
                return list(await pipe.execute(raise_on_error=False))
        pool = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            return list(await conn.retry.call_with_retry(
                lambda: self._exchange(conn), lambda _error: conn.disconnect()))
        finally:
            await pool.release(conn)

    async def _exchange(self, conn: Any) -> list[Any]:
        await conn.send_packed_command(conn.pack_commands(self.commands))
        reader = getattr(conn._parser, "_reader", None)
        if reader is None or NOT_ENOUGH_DATA is None:  # not hiredis: a reply at a time
            return [await _read_one(conn) for _ in self.commands]
        # The replies straight from the hiredis reader (error replies come as exception
        # values): redis-py's read_response wraps each reply in a timeout context and
        # its own checks, a third of the client's cost per command (6.3 vs 9.7 µs).
        out: list[Any] = []
        want = len(self.commands)
        try:
            while len(out) < want:
                reply = reader.gets()
                if reply is NOT_ENOUGH_DATA:
                    await conn._parser.read_from_socket()
                elif isinstance(reply, redis.ConnectionError):
                    raise reply
                else:
                    out.append(reply)
        except BaseException as exc:
            # Replies half read (an error, or the caller cancelled): the connection
            # must not go back to the pool as it is.
            await conn.disconnect(nowait=True)
            if isinstance(exc, OSError):
                raise redis.ConnectionError(f"reading replies: {exc}") from exc
            raise
        if conn.health_check_interval:  # as read_response does: a live connection
            # needs no PING before its next command for another interval
            conn.next_health_check = asyncio.get_running_loop().time() + conn.health_check_interval
        return out


async def _read_one(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except redis.ResponseError as exc:  # the reply was read whole: go on
        return exc


class Backoff:
    """Waits between retries of a loop that met :data:`REDIS_ERRORS`: doubling from
    ``initial`` to ``maximum`` seconds, back to ``initial`` on :meth:`reset`."""

    __slots__ = ("current", "initial", "maximum")

    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        self.initial, self.maximum, self.current = initial, maximum, initial

    def next(self) -> float:
        """The wait before the next try (and double the one after)."""
        wait = self.current
        self.current = min(self.current * 2, self.maximum)
        return wait

    def reset(self) -> None:
        self.current = self.initial


def text(value: Any) -> str:
    """A reply value as text: bytes decoded as UTF-8 (undecodable bytes replaced, never
    raised), anything else through ``str``. Replies are bytes (see the module docstring)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a Cluster client (sync or asyncio)."""
    return isinstance(client, aioredis.RedisCluster | redis.RedisCluster)


async def get_many(client: Any, keys: list[str]) -> list[Any]:
    """GET of each key in one round trip, on one server or a Cluster (where MGET may
    not span slots)."""
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        return list(await pipe.execute())


async def scan_keys(client: Any, pattern: str, *, near: Sequence[str] = (),
                    count: int = 1000) -> AsyncIterator[str]:
    """Every key matching ``pattern`` (SCAN; a key may come twice, as SCAN promises no
    better). On a Cluster every primary is scanned, or with ``near`` (keys in the slots
    of every match, e.g. partition tags) only the primaries serving those."""
    if not isinstance(client, aioredis.RedisCluster):
        async for key in client.scan_iter(match=pattern, count=count):
            yield text(key)
        return
    await client.initialize()
    nodes: dict[str, Any] = {}
    for k in near:
        node: Any = client.get_node_from_key(k)
        nodes[node.name] = node
    for node in nodes.values() if near else client.get_primaries():
        cursor = 0
        while True:
            cursors: Any
            cursors, found = await client.scan(cursor, match=pattern, count=count,
                                               target_nodes=node)
            for key in found:
                yield text(key)
            cursor = int(cursors[node.name])
            if cursor == 0:
                break


SAFE_POLICIES = ("noeviction",)


async def eviction_warning(client: Any) -> str | None:
    """A warning when the server may evict keys (``maxmemory-policy`` other than
    ``noeviction``): evicting would silently drop log entries, projections, leases.
    None when safe, or when the policy cannot be read (CONFIG refused: managed servers)."""
    try:
        reply = await client.config_get("maxmemory-policy")
    except REDIS_ERRORS:
        return None
    found = reply.values() if isinstance(reply, dict) else []
    policies = {text(v) for v in found if not isinstance(v, dict)}
    for nested in (v for v in found if isinstance(v, dict)):  # a Cluster: per node
        policies |= {text(x) for x in nested.values()}
    bad = sorted(p for p in policies if p not in SAFE_POLICIES)
    if not bad:
        return None
    return (f"the server's maxmemory-policy is {', '.join(bad)}: at its memory limit it "
            "would evict keys — log entries, projections, leases — silently; set "
            "maxmemory-policy noeviction (Herald then answers 507 until memory frees)")


async def refresh_topology(client: Any) -> None:
    """Read the Cluster's slot map again (after a failover or a slot move); no-op on
    one server."""
    if isinstance(client, aioredis.RedisCluster):
        await client.nodes_manager.initialize()


def resolve_url(settings: Settings) -> str:
    """``REDIS_URL``, else the server running on the data folder; else NoServerError.

    Never starts a server: only ``herald run`` does (streams/server.py ``ensure_server``).
    """
    if settings.redis_url:
        return settings.redis_url
    url = running_server_url(settings.data_dir)
    if url is None:
        raise NoServerError(
            f"no Herald server is running for the data folder {settings.data_dir.resolve()}: "
            "start one with `herald run` (it leaves server.url there), or set REDIS_URL"
        )
    return url


def connect(settings: Settings, url: str | None = None, **kwargs: Any) -> Any:
    """An asyncio client (``redis.asyncio.Redis`` or ``RedisCluster``); close with aclose()."""
    url = url or resolve_url(settings)
    common: dict[str, Any] = {
        "decode_responses": False,
        "protocol": 2,
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": min(settings.redis_timeout_s, CONNECT_TIMEOUT_S),
        "health_check_interval": 30,
        "retry": AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), RETRY_ATTEMPTS),
        "retry_on_error": list(RETRY_ERRORS),
    }
    common.update(tls_options(settings, url))
    common.update(kwargs)
    if settings.redis_cluster:
        common.pop("health_check_interval")
        common.pop("retry_on_error")
        return aioredis.RedisCluster.from_url(url, **common)
    # A blocking pool: a burst beyond the cap waits (up to POOL_WAIT_S) for a free
    # connection instead of failing at once with "too many connections". An explicit
    # connection class wins over the URL's scheme in redis-py, so rediss:// needs the
    # TLS one named here (else the connection would silently be plaintext).
    secure = url.lower().startswith("rediss://")
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=settings.redis_max_connections, timeout=POOL_WAIT_S,
        connection_class=HiredisPackSSLConnection if secure else HiredisPackConnection,
        **common,
    )
    return aioredis.Redis.from_pool(pool)


def connect_sync(settings: Settings, url: str | None = None, **kwargs: Any) -> Any:
    """A synchronous client, for the sync producer and operator commands."""
    url = url or resolve_url(settings)
    common: dict[str, Any] = {
        "decode_responses": False,
        "protocol": 2,
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": min(settings.redis_timeout_s, CONNECT_TIMEOUT_S),
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRY_ATTEMPTS),
        "retry_on_error": list(RETRY_ERRORS),
    }
    common.update(tls_options(settings, url))
    common.update(kwargs)
    if settings.redis_cluster:
        common.pop("retry_on_error")
        return redis.RedisCluster.from_url(url, **common)
    return redis.Redis.from_url(url, **common)
