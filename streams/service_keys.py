"""Service keys: who a key is (its id), what it may do (scopes), for which tenant.

Two variables give keys, and every key they give is valid at once (rotation: add
the new key, move the callers, remove the old one):

- ``HERALD_API_KEYS``: keys, comma-separated, as before, each ``key`` (the default
  tenant) or ``tenant:key`` (streams/tenants.py). Each has every scope and the id
  ``k_<12 hex of its SHA-256>`` (the fingerprint the logs and rate limits use).
- ``HERALD_SERVICE_KEYS``: ``id[@tenant]:scope+scope:secret`` entries, comma-separated,
  where ``secret`` is the key itself or ``sha256:<64 hex>``, its SHA-256 — so the
  environment need hold no usable key (``printf %s "$KEY" | sha256sum``). Example:
  ``billing:publish+read:sha256:9f86d0…,ops:admin+manage:hk_live_…``.

Scopes (:data:`SCOPES`): ``publish`` (notifications, batches, CloudEvents, cancelling
schedules), ``read`` (inboxes, counts, statuses, preferences and profiles, live
streams, and inbox actions taken for a user), ``manage`` (profiles, preferences,
erasure), ``admin`` (the operator page's status, dead letters). ``*`` means all four.

``tenant`` is whose users the key acts for: a key of tenant ``acme`` reaches only
``acme``'s users (their ids are scoped, streams/tenants.py); without one, the default
tenant's (plain ids) — and only a default-tenant key reaches the operator routes.

Failure modes: :func:`parse_service_keys` raises ValueError naming the entry (never
printing a secret) for a malformed entry, an unknown scope, a bad digest or an id
given twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from herald.streams import tenants

SCOPES = ("publish", "read", "manage", "admin")
DEFAULT_TENANT = tenants.DEFAULT  # "" (streams/tenants.py): plain user ids
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """One key: its id (safe to log and to record in events), scopes, tenant, and the
    SHA-256 digest of the secret (the secret itself is never kept)."""

    id: str
    scopes: frozenset[str]
    digest: bytes = field(repr=False)
    tenant: str = DEFAULT_TENANT


def key_id(key: str) -> str:
    """The id of a bare key of ``HERALD_API_KEYS``."""
    return "k_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _scopes(text: str, where: str) -> frozenset[str]:
    names = {s.strip() for s in text.split("+") if s.strip()}
    if names == {"*"}:
        return frozenset(SCOPES)
    unknown = names - set(SCOPES)
    if not names or unknown:
        raise ValueError(f"{where}: scopes are {'+'.join(SCOPES)} (or *), "
                         f"got {'+'.join(sorted(unknown)) or 'none'}")
    return frozenset(names)


def parse_service_keys(bare: tuple[str, ...], scoped: str) -> tuple[ServiceKey, ...]:
    """Every valid key from ``HERALD_API_KEYS`` (``bare``) and ``HERALD_SERVICE_KEYS``."""
    out = [ServiceKey(key_id(k), frozenset(SCOPES), hashlib.sha256(k.encode()).digest(), tenant)
           for tenant, k in map(tenants.parse_key, bare)]
    for index, entry in enumerate(p.strip() for p in scoped.split(",")):
        if not entry:
            continue
        where = f"entry {index + 1}"
        name, _, rest = entry.partition(":")
        scopes, _, secret = rest.partition(":")
        ident, _, tenant = name.partition("@")
        if not _ID.fullmatch(ident) or (tenant and not tenants.is_tenant(tenant)):
            raise ValueError(f"{where}: write id[@tenant]:scopes:key (id 1-64 of A-Z a-z "
                             "0-9 _ . -; tenant as in streams/tenants.py: 1-64 of a-z 0-9 _ -)")
        where = f"key {ident!r}"
        if not secret:
            raise ValueError(f"{where}: no key after the scopes (id:scopes:key)")
        hashed = _DIGEST.fullmatch(secret)
        if secret.startswith("sha256:") and hashed is None:
            raise ValueError(f"{where}: a hashed key is sha256: and 64 hex digits")
        if hashed is None and len(secret) < 16:
            raise ValueError(f"{where}: a key must be at least 16 characters")
        digest = bytes.fromhex(hashed.group(1)) if hashed else hashlib.sha256(
            secret.encode()).digest()
        out.append(ServiceKey(ident, _scopes(scopes, where), digest, tenant or DEFAULT_TENANT))
    ids = [k.id for k in out]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"key id {twice[0]!r} is given twice")
    return tuple(out)
