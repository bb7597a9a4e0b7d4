"""User tokens, minted by your backend (it holds ``HERALD_TOKEN_SECRET``; the API
mints none outside development mode).

A token is a JWT (HS256) whose ``sub`` is the user id and ``exp`` its expiry; it lets a
browser act for that user only (``/v1/users/me/…``, live streams with
``?access_token=``). Hand it to the page's token callback (``/v1/client.js``).
Standard library only: the same token PyJWT or any JWT library would make.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

MIN_SECRET_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_token(secret: str, user: str, ttl_seconds: float = 3600.0, *,
               now: float | None = None) -> str:
    """A user token for ``user`` valid ``ttl_seconds``; ValueError for a short secret."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError("the token secret must be at least 32 bytes (HERALD_TOKEN_SECRET)")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = int(time.time() if now is None else now)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": user, "iat": issued, "exp": issued + int(ttl_seconds)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
