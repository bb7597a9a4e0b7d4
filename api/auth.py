"""Authentication: service API keys and user tokens (JWT HS256), and who may act for whom.

``Authorization: Bearer <credential>``. A service key (one of ``HERALD_API_KEYS``)
may act for any user. A user token is a JWT signed with HS256 and
``HERALD_TOKEN_SECRET`` whose ``sub`` is the user id and whose ``exp`` is required;
it may act only for its own user, and ``me`` in a path stands for it.

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
from herald.streams.errors import ValidationError
from herald.streams.settings import Settings
from herald.streams.validation import check_user

ALGORITHM = "HS256"
ME = "me"
VERIFIED_CACHE = 10_000  # user tokens remembered after their signature checked out


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a service key (``subject`` = the key's fingerprint) or a user."""

    kind: Literal["service", "user"]
    subject: str

    @property
    def is_service(self) -> bool:
        return self.kind == "service"


def valid_user(value: object, field: str) -> str:
    """``check_user`` plus a whole-string match (``$`` alone would let a trailing newline by)."""
    return check_user(value, field)  # fullmatch: no trailing newline gets by


def fingerprint(key: str) -> str:
    """A short, stable, non-secret name for a service key (logs, metrics, rate buckets)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def mint_token(secret: str, user: str, ttl_s: float, *, now: float | None = None) -> str:
    """A user token for ``user`` valid for ``ttl_s`` seconds (ValidationError for a bad user)."""
    valid_user(user, "user")
    issued = int(time.time() if now is None else now)
    claims = {"sub": user, "iat": issued, "exp": issued + max(1, int(ttl_s))}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class Authenticator:
    """Resolves a bearer credential to a :class:`Principal`; built once per app.

    A user token whose signature and claims checked out is remembered (LRU,
    ``VERIFIED_CACHE`` tokens) with its ``exp``, so a browser's repeated requests
    skip the HMAC and JSON work; its expiry is still checked on every use.
    """

    def __init__(self, settings: Settings) -> None:
        self._key_digests = [(hashlib.sha256(k.encode()).digest(), k) for k in settings.api_keys]
        self._secret = settings.token_secret
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()

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
            return Principal("service", fingerprint(key))
        return Principal("user", self._decode(credential))

    def _match_key(self, credential: str) -> str | None:
        presented = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for digest, key in self._key_digests:
            if hmac.compare_digest(presented, digest):
                found = key
        return found

    def _decode(self, token: str) -> str:
        known = self._verified.get(token)
        if known is not None:
            if known[1] > time.time():
                self._verified.move_to_end(token)
                return known[0]
            del self._verified[token]
            raise Unauthorized("the user token has expired")
        if not self._secret or token.count(".") != 2:
            raise Unauthorized("the credential is neither an API key nor a user token")
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM],
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the user token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid user token: {exc}") from exc
        try:
            user = valid_user(claims.get("sub"), "sub")
        except ValidationError as exc:
            raise Unauthorized(f"invalid user token: {exc}") from exc
        self._verified[token] = (user, float(claims["exp"]))
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return user


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
            return principal.subject
        raise Forbidden("a user token may act only for its own user")
    if user == ME:
        raise Forbidden("'me' stands for a user token's own user; a service key must name "
                        "the user")
    try:
        return valid_user(user, "path.user")
    except ValidationError as exc:
        raise Unprocessable(str(exc), errors=[field_error(exc.field, exc.message)]) from exc
