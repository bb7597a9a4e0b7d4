"""The least privilege Herald needs on Redis: the exact ACL of its user.

:data:`COMMANDS` is every command Herald's processes (API, workers, operator
commands) send, directly or from their Lua scripts (scripts run with the caller's
permissions, so their commands are listed too); keys and shard channels are limited
to the prefix. :func:`acl_rules` gives the ``ACL SETUSER`` rules; the README shows the
same list (tests/streams/test_redis_tls.py checks both, and runs publish, projection,
API reads and live push as a user with exactly these rules, over TLS).

Left out on purpose: ``KEYS``, ``FLUSH*``, ``CONFIG SET``, ``DEBUG``, ``SHUTDOWN``,
``ACL``, ``MODULE``, ``REPLICAOF``, ``BGSAVE``/``BGREWRITEAOF`` and every other
administrative command. ``CONFIG GET`` only reads the eviction policy (a refusal is
tolerated); ``WAIT``/``WAITAOF`` are needed only with ``HERALD_PUBLISH_DURABILITY``.
"""

from __future__ import annotations

COMMANDS: tuple[str, ...] = (
    # connection
    "auth", "hello", "ping", "client|setinfo", "client|setname", "select", "client|id",
    "client|unblock",
    # streams: the log, consumer groups, dead letters
    "xadd", "xrange", "xrevrange", "xreadgroup", "xack", "xautoclaim", "xclaim",
    "xpending", "xlen", "xtrim", "xdel", "xinfo|stream", "xinfo|groups", "xinfo|consumers",
    "xgroup|create", "xgroup|createconsumer", "xgroup|destroy", "xgroup|setid",
    # strings, hashes, sets, sorted sets: projections, leases, idempotency, rate limits
    "get", "set", "mget", "incrby", "hget", "hset", "hsetnx", "hgetall", "hmget", "hdel",
    "hkeys", "hincrby", "sadd", "srem", "smembers", "spop", "scard", "zadd", "zrem",
    "zrange", "zrangebyscore", "zrangebylex", "zrevrangebylex", "zremrangebyscore",
    "zremrangebylex", "zcard", "zscore", "zpopmin",
    # keys
    "del", "unlink", "exists", "type", "pexpire", "pexpireat", "pttl", "scan",
    # scripts and transactions
    "evalsha", "eval", "script|load", "script|exists", "multi", "exec", "discard", "watch",
    "unwatch",
    # pub/sub (live push): shard channels
    "spublish", "ssubscribe", "sunsubscribe",
    # server: time, health, durability
    "time", "info", "config|get", "wait", "waitaof", "memory|usage",
)


def acl_rules(prefix: str, password: str) -> list[str]:
    """The ``ACL SETUSER <name>`` rules for a Herald user of key prefix ``prefix``."""
    return ["reset", "on", f">{password}", f"~{prefix}:*", f"&{prefix}:*", "-@all",
            *(f"+{c}" for c in COMMANDS)]


def acl_line(prefix: str = "herald", password: str = "<password>", user: str = "herald") -> str:
    """The rules as one ``ACL SETUSER`` command line (the README shows it)."""
    return f"ACL SETUSER {user} " + " ".join(acl_rules(prefix, password))
