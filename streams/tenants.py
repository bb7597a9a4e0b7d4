"""Tenants: one Herald serving several customers whose users never meet.

A tenant is a name ``[a-z0-9][a-z0-9_-]{0,63}``. It travels inside the user id of
every event: a tenant's user ``alice`` is the *scoped* id ``<tenant>\\x1f<user>`` (the
ASCII unit separator, a control character no plain user id may contain, so no
request can forge one), and a plain id (no separator) belongs to the default tenant
— every id of a single-tenant Herald. Because the tenant is part of the id, it is
part of every key built from the id (the key namespace: two tenants' ``alice`` are
two inboxes, in whatever partitions their scoped ids hash to), and of everything
derived from the log, replay included.

Who may act for a tenant: a service key listed as ``<tenant>:<key>`` in
``HERALD_API_KEYS`` (a key without a tenant acts for the default tenant), a user
token whose ``ten`` claim names it. The API scopes every user it is given and
answers a scoped id's plain part (api/auth.py); nothing of another tenant is ever
found (404) or written.
"""

from __future__ import annotations

import re

SEP = "\x1f"
TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT = ""  # the default tenant (plain user ids)


def is_tenant(name: object) -> bool:
    return isinstance(name, str) and TENANT_RE.fullmatch(name) is not None


def scoped(tenant: str, user: str) -> str:
    """The id of ``user`` of ``tenant`` (``user`` itself for the default tenant)."""
    return user if tenant == DEFAULT else f"{tenant}{SEP}{user}"


def split(user: str) -> tuple[str, str]:
    """``(tenant, plain user)`` of a (possibly scoped) id."""
    tenant, sep, plain = user.partition(SEP)
    return (tenant, plain) if sep else (DEFAULT, user)


def tenant_of(user: str) -> str:
    return split(user)[0]


def plain(user: str) -> str:
    """The id as the tenant's own callers know it."""
    return split(user)[1]


def record_key(user: str, idempotency_key: str) -> str:
    """The idempotency record's field for a key used for ``user``: the key itself for
    the default tenant, else scoped by the tenant (two tenants' equal keys never meet)."""
    tenant = tenant_of(user)
    return idempotency_key if tenant == DEFAULT else f"{tenant}{SEP}{idempotency_key}"


def parse_key(entry: str) -> tuple[str, str]:
    """``(tenant, key)`` of a ``HERALD_API_KEYS`` entry: ``<tenant>:<key>`` names the
    tenant when the part before the first ``:`` is a tenant name, else the whole entry
    is a key of the default tenant."""
    head, sep, rest = entry.partition(":")
    if sep and rest and is_tenant(head):
        return head, rest
    return DEFAULT, entry
