"""JSON at the HTTP edge: reading request bodies and writing responses (orjson).

Failure modes of :func:`read_json`: :class:`PayloadTooLarge` (413) when the
declared or actual body is over ``HERALD_MAX_BODY``; :class:`BadRequest` (400) when
the body is missing where required, is not UTF-8, or is not JSON (including
NaN, lone surrogates and numbers outside 64 bits, which orjson rejects).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from herald.api.errors import BadRequest, PayloadTooLarge

JSON_TYPE = "application/json"
NO_BODY: Any = object()  # an empty body where none is required (JSON null is a body)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response (UTF-8, so any text round-trips unchanged)."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type=JSON_TYPE, charset="utf-8",
        headers=headers,
    )


async def read_json(request: web.Request, max_bytes: int, *, required: bool = True) -> Any:
    """The decoded JSON body, or NO_BODY when it is empty and not required."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {max_bytes}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"the body is over the limit of {max_bytes} bytes") from exc
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is {len(raw)} bytes; the limit is {max_bytes}")
    if not raw.strip():
        if required:
            raise BadRequest("this request needs a JSON body")
        return NO_BODY
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
