"""``herald publish``: append one notification (now, after a delay, or at a time).

``--at`` in the past is refused (exit 2): a typo in a date must not send at once.
With ``--allow-past`` it fires now (scheduled for the current time, so a
``--cancel-key`` still names it).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from herald.command import EXIT_OK, UsageError, command, connected, scoped_user
from herald.streams.events import NotificationCreated, NotificationScheduled, Payload
from herald.streams.producer import Producer, now_ms
from herald.streams.settings import Settings, parse_duration


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="recipient user id")
    parser.add_argument("--title", required=True)
    parser.add_argument("--body", default="")
    parser.add_argument("--category", default="general")
    parser.add_argument("--data", default=None, help="a JSON object attached to the item")
    parser.add_argument("--channels", default="in_app", help="comma-separated, e.g. in_app,sms")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--delay", default=None, help="deliver after this long (30s, 15m, 2h)")
    when.add_argument("--at", default=None, help="deliver at this ISO-8601 time (UTC if no zone)")
    parser.add_argument("--allow-past", action="store_true",
                        help="an --at in the past fires now instead of being refused")
    parser.add_argument("--cancel-key", default=None, help="key to cancel a scheduled notification")
    parser.add_argument("--idempotency-key", default=None)
    parser.add_argument("--tenant", default="", help="the user's tenant (default: none)")


def _data(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"--data is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError("--data must be a JSON object")
    return value


def _deliver_at(args: argparse.Namespace) -> int | None:
    if args.delay is not None:
        try:
            return now_ms() + int(parse_duration(args.delay) * 1000)
        except ValueError as exc:
            raise UsageError(f"--delay: {exc}") from exc
    if args.at is not None:
        try:
            moment = datetime.fromisoformat(args.at)
        except ValueError as exc:
            raise UsageError(f"--at is not an ISO-8601 time: {args.at!r}") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        due, now = int(moment.timestamp() * 1000), now_ms()
        if due < now:
            if not args.allow_past:
                raise UsageError(f"--at {args.at} is in the past (now is "
                                 f"{datetime.now(UTC).isoformat(timespec='seconds')}); "
                                 "add --allow-past to send it now")
            return now
        return due
    return None


def build_payload(args: argparse.Namespace) -> Payload:
    common: dict[str, Any] = {
        "title": args.title,
        "body": args.body,
        "category": args.category,
        "data": _data(args.data),
        "channels": tuple(c.strip() for c in args.channels.split(",") if c.strip()),
    }
    deliver_at = _deliver_at(args)
    if deliver_at is not None:
        return NotificationScheduled(deliver_at=deliver_at, cancel_key=args.cancel_key, **common)
    if args.cancel_key is not None:
        raise UsageError("--cancel-key needs --delay or --at")
    return NotificationCreated(**common)


@command
def main(args: argparse.Namespace) -> int:
    payload = build_payload(args)
    return connected(lambda settings, redis: _publish(args, payload, settings, redis))


async def _publish(args: argparse.Namespace, payload: Payload, settings: Settings,
                   redis: Any) -> int:
    producer = Producer(redis, settings)
    env = producer.envelope(scoped_user(args.user, args.tenant), payload,
                            idempotency_key=args.idempotency_key)
    appended = await producer.publish(env)
    out = {"id": appended.id, "partition": appended.partition, "position": appended.position,
           "duplicate": appended.duplicate}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return EXIT_OK
