"""``GET /v1/admin/status`` (service key): what the operator page shows.

The document of ``herald status`` (consumers/overview.py: per partition the log
length, last position, the projector's checkpoint, and per group the owner and
what is left of its lease, lag, pending; dead letters), plus:

- ``throughput``: entries appended per second and entries processed (acked) per
  second per group, measured by this API process between two calls at least
  :data:`MIN_INTERVAL_S` apart (null on the first call; the page polls, so it
  fills in on the second refresh);
- ``live``: this process's live-push numbers (connections, users, subscribed
  partitions, signals, refusals, slow clients, resets), or null without the hub;
- ``generated_at``: ISO-8601 UTC.

Redis errors propagate (503 problem+json).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from herald.api.auth import require_default_tenant
from herald.api.context import REDIS
from herald.api.jsonio import json_response
from herald.api.live.hub import HUB
from herald.api.routing import Call, Reply, Route
from herald.consumers.overview import collect
from herald.streams.settings import Settings

MIN_INTERVAL_S = 1.0


@dataclass(slots=True)
class Sampler:
    """Totals of the previous call and the rates derived from the last two."""

    taken_at: float = 0.0
    totals: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] | None = None

    def update(self, totals: dict[str, int], now: float) -> dict[str, float] | None:
        elapsed = now - self.taken_at
        if self.totals and elapsed >= MIN_INTERVAL_S:
            self.rates = {name: round(max(0, value - self.totals.get(name, value)) / elapsed, 2)
                          for name, value in totals.items()}
        if not self.totals or elapsed >= MIN_INTERVAL_S:
            self.taken_at, self.totals = now, totals
        return self.rates


SAMPLER: web.AppKey[Sampler] = web.AppKey("admin_sampler")


def totals_of(status: dict[str, Any]) -> dict[str, int]:
    """``appended`` (log length) and ``processed:<group>`` (given and acked) totals."""
    out = {"appended": int(status["totals"]["length"])}
    for row in status["partitions"]:
        for group in row["groups"]:
            done = row["length"] - (group["lag"] or 0) - group["pending"]
            key = f"processed:{group['name']}"
            out[key] = out.get(key, 0) + max(0, done)
    return out


async def admin_status(call: Call) -> web.Response:
    if call.principal is not None:
        require_default_tenant(call.principal)  # every tenant's streams: the operator's
    app = call.app
    status = await collect(app[REDIS], call.settings)
    rates = app[SAMPLER].update(totals_of(status), time.monotonic())
    throughput = None
    if rates is not None:
        throughput = {
            "appended_per_s": rates.get("appended", 0.0),
            "processed_per_s": {k.partition(":")[2]: v for k, v in rates.items()
                                if k.startswith("processed:")},
        }
    hub = app.get(HUB)
    return json_response({
        "generated_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "status": status,
        "throughput": throughput,
        "live": hub.stats() if hub is not None else None,
    })


def routes(settings: Settings) -> list[Route]:
    return [
        Route("GET", "/v1/admin/status", admin_status, "admin_status",
              "Operator status: partitions, groups, lag, dead letters, throughput, live",
              "operations", "service",
              {200: Reply("The status document (see `herald status --json`), with "
                          "`throughput` and `live`.", "AdminStatus")}, errors=(403,),
              description="For the operator page (/admin). Throughput is measured by this "
                          "process between calls at least 1 s apart (null on the first)."),
    ]


def schemas(settings: Settings) -> dict[str, dict[str, Any]]:
    nullable_object = {"type": ["object", "null"]}
    return {"AdminStatus": {
        "type": "object", "required": ["generated_at", "status", "throughput", "live"],
        "properties": {
            "generated_at": {"type": "string", "format": "date-time"},
            "status": {"type": "object", "required": ["prefix", "partitions", "totals"]},
            "throughput": {**nullable_object, "properties": {
                "appended_per_s": {"type": "number"},
                "processed_per_s": {"type": "object",
                                    "additionalProperties": {"type": "number"}}}},
            "live": {**nullable_object, "properties": {
                "connections": {"type": "integer"}, "users": {"type": "integer"}}},
        },
    }}


def setup(app: web.Application) -> None:
    app[SAMPLER] = Sampler()
