"""herald_client: a typed Python client of Herald's HTTP API, sync and async.

For services that publish notifications, schedule and cancel them, look up their
delivery status, and query or act on inboxes — over HTTP, without importing the
server (that is ``herald``)::

    from herald_client import Herald

    herald = Herald("http://127.0.0.1:8080", api_key="hk_...")
    sent = herald.publish("alice", "Your order has shipped", idempotency_key="order-42")
    print(sent["id"], herald.unread_count("alice"))

``AsyncHerald`` has the same methods as coroutines. Retries reuse the idempotency key
(one is generated when you give none), so a retried publish is never appended twice;
errors carry the API's problem+json (:class:`ApiError`). ``mint_token`` makes user
tokens in your backend for browsers (``/v1/client.js``).
"""

from __future__ import annotations

from herald_client.aio import AsyncHerald
from herald_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    HeraldClientError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    TransportError,
    Unavailable,
    Unprocessable,
)
from herald_client.sync import Herald
from herald_client.tokens import mint_token

__all__ = [
    "ApiError",
    "AsyncHerald",
    "AuthenticationError",
    "BadRequest",
    "Herald",
    "HeraldClientError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RequestTimeout",
    "TransportError",
    "Unavailable",
    "Unprocessable",
    "mint_token",
]
