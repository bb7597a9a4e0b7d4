"""Authentication: service API keys and user tokens (JWT HS256), and who may act for whom.

``Authorization: Bearer <credential>``. A service key (one of ``HERALD_API_KEYS``)
may act for any user of its tenant (``<tenant>:<key>``; a plain key: the default
tenant; streams/tenants.py); a user token for its ``sub`` of its ``ten`` tenant.
A user token is a JWT signed with HS256 and
``HERALD_TOKEN_SECRET`` whose ``sub`` is the user id and whose ``exp`` is required;
it may act only for its own user, and ``me`` in a path stands for it.

User tokens: HS256 only; ``iss`` and ``aud`` are required and checked when
``HERALD_TOKEN_ISSUER`` / ``HERALD_TOKEN_AUDIENCE`` are set; ``exp`` (and ``nbf``,
``iat``) accept ``HERALD_TOKEN_LEEWAY`` of clock skew (5 s by default). A token
issued before its user's last "sign out everywhere" (``user.tokens_revoked``) is
refused by :func:`check_not_revoked` (api/routing.py calls it on every request).

Guarantees: keys are compared in constant time over SHA-256 digests (neither the
matching key nor its length leaks through timing); every key is compared on every
request. Failure modes: :class:`Unauthorized` (401) for a missing, malformed,
invalid or expired credential; :class:`Forbidden` (403) when a valid credential
names another user's resource — raised before anything is looked up, so a user
token cannot learn whether another user's item exists.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import jwt

from herald.api.errors import Forbidden, Unauthorized, Unprocessable, field_error
from herald.streams import tenants
from herald.streams.errors import ValidationError
from herald.streams.service_keys import (
    ServiceKey,
    key_id,
    parse_service_keys,
)
from herald.streams.settings import Settings
from herald.streams.validation import check_user

ALGORITHM = "HS256"
ME = "me"
VERIFIED_CACHE = 10_000  # user tokens remembered after their signature checked out


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a service key (``subject`` = the key's id, with its scopes and
    tenant) or a user (``subject`` = the user id, ``tenant`` the token's ``ten``);
    ``tenant`` is whose users it may act for (streams/tenants.py; "" = the default)."""

    kind: Literal["service", "user"]
    subject: str
    scopes: frozenset[str] = frozenset()
    tenant: str = tenants.DEFAULT
    issued_at: float = 0.0  # a user token's ``iat`` (seconds; 0 when it has none)

    @property
    def actor(self) -> str:
        """What events appended for this caller record (streams/events.py ``actor``)."""
        return f"key:{self.subject}" if self.is_service else f"user:{self.subject}"

    @property
    def is_service(self) -> bool:
        return self.kind == "service"


def valid_user(value: object, field: str) -> str:
    """A plain user id as a request gives it (never a tenant-scoped one, never one of
    Herald's own users)."""
    return check_user(value, field, scoped=False, system=False)


def fingerprint(key: str) -> str:
    """A short, stable, non-secret name for a bare service key (logs, metrics, rate
    buckets): its key id (streams/service_keys.py)."""
    return key_id(key)


def mint_token(secret: str, user: str, ttl_s: float, *, now: float | None = None,
               issuer: str = "", audience: str = "", tenant: str = tenants.DEFAULT) -> str:
    """A user token for ``user`` (of ``tenant``: the ``ten`` claim) valid for ``ttl_s``
    seconds (ValidationError for a bad user or tenant); ``iss`` and ``aud`` when given
    (``HERALD_TOKEN_ISSUER`` / ``_AUDIENCE``)."""
    valid_user(user, "user")
    if tenant != tenants.DEFAULT and not tenants.is_tenant(tenant):
        raise ValidationError("tenant", "must be 1-64 of a-z 0-9 _ - (starting a-z 0-9)")
    issued = time.time() if now is None else now
    # iat to the millisecond, so "sign out everywhere" (ms) splits tokens of one second
    claims: dict[str, object] = {"sub": user, "iat": round(issued, 3),
                                 "exp": int(issued) + max(1, int(ttl_s))}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    if tenant != tenants.DEFAULT:
        claims["ten"] = tenant
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def minted_for(settings: Settings, user: str, ttl_s: float,
               tenant: str = tenants.DEFAULT) -> str:
    """:func:`mint_token` with this deployment's secret, issuer and audience."""
    return mint_token(settings.token_secret, user, ttl_s, issuer=settings.token_issuer,
                      audience=settings.token_audience, tenant=tenant)


class Authenticator:
    """Resolves a bearer credential to a :class:`Principal`; built once per app.

    A user token whose signature and claims checked out is remembered (LRU,
    ``VERIFIED_CACHE`` tokens) with its ``exp``, so a browser's repeated requests
    skip the HMAC and JSON work; its expiry is still checked on every use.
    """

    def __init__(self, settings: Settings) -> None:
        self._keys = parse_service_keys(settings.api_keys, settings.service_keys)
        self._secret = settings.token_secret
        self._issuer = settings.token_issuer or None
        self._audience = settings.token_audience or None
        self._leeway = settings.token_leeway_s
        self._verified: OrderedDict[str, tuple[str, float, float, str]] = OrderedDict()

    def authenticate(self, header: str | None) -> Principal:
        """The principal of an ``Authorization`` header value; raises Unauthorized."""
        if not header:
            raise Unauthorized("missing Authorization: Bearer <api key or user token>")
        scheme, _, credential = header.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("use Authorization: Bearer <api key or user token>")
        key = self._match_key(credential)
        if key is not None:
            return Principal("service", key.id, key.scopes, key.tenant)
        user, issued, tenant = self._decode(credential)
        return Principal("user", user, tenant=tenant, issued_at=issued)

    def _match_key(self, credential: str) -> ServiceKey | None:
        presented = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
        found: ServiceKey | None = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found

    def _decode(self, token: str) -> tuple[str, float, str]:
        """(user, issued-at seconds (0 without ``iat``), tenant) of a valid token;
        Unauthorized."""
        known = self._verified.get(token)
        if known is not None:
            if known[1] + self._leeway > time.time():
                self._verified.move_to_end(token)
                return known[0], known[2], known[3]
            del self._verified[token]
            raise Unauthorized("the user token has expired")
        if not self._secret or token.count(".") != 2:
            raise Unauthorized("the credential is neither an API key nor a user token")
        required = ["exp", "sub", *(["iss"] if self._issuer else []),
                    *(["aud"] if self._audience else [])]
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], issuer=self._issuer,
                audience=self._audience, leeway=self._leeway, options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the user token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid user token: {exc}") from exc
        try:
            user = valid_user(claims.get("sub"), "sub")
        except ValidationError as exc:
            raise Unauthorized(f"invalid user token: {exc}") from exc
        tenant = claims.get("ten", tenants.DEFAULT)
        if tenant != tenants.DEFAULT and not tenants.is_tenant(tenant):
            raise Unauthorized("invalid user token: ten: not a tenant name")
        iat = claims.get("iat")
        issued = float(iat) if isinstance(iat, int | float) else 0.0
        self._verified[token] = (user, float(claims["exp"]), issued, tenant)
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return user, issued, tenant


def require_service(principal: Principal) -> None:
    """Raise Forbidden unless the caller holds a service key."""
    if not principal.is_service:
        raise Forbidden("this route needs a service API key; a user token may not call it")


def act_for(principal: Principal, user: str) -> str:
    """The user a request acts for, given the ``{user}`` path segment.

    A user token resolves ``me`` and its own id to itself and gets Forbidden for
    anything else (before any lookup). A service key must name a valid user
    (Unprocessable otherwise) and gets Forbidden for ``me``: it has no user of its own.
    """
    if not principal.is_service:
        if user in (ME, principal.subject):
            return tenants.scoped(principal.tenant, principal.subject)
        raise Forbidden("a user token may act only for its own user")
    if user == ME:
        raise Forbidden("'me' stands for a user token's own user; a service key must name "
                        "the user")
    try:
        return tenants.scoped(principal.tenant, valid_user(user, "path.user"))
    except ValidationError as exc:
        raise Unprocessable(str(exc), errors=[field_error(exc.field, exc.message)]) from exc


def check_not_revoked(principal: Principal, epoch_ms: int) -> None:
    """Unauthorized when a user token was issued before its user's revocation epoch."""
    if not principal.is_service and epoch_ms and principal.issued_at * 1000 < epoch_ms:
        raise Unauthorized("the user token was revoked (signed out everywhere); sign in "
                           "again")


def require_default_tenant(principal: Principal) -> None:
    """Raise Forbidden unless the caller is a key of the default tenant (operator routes
    that see every tenant's data)."""
    if principal.tenant != tenants.DEFAULT:
        raise Forbidden("this route is for the operator (a key without a tenant)")
