"""The SSRF guard at send time, against a real receiver on 127.0.0.1 only.

Loopback is refused by default (the receiver records no request) and reached once
allowed; a name that an injected resolver maps to 127.0.0.1 (DNS rebinding: the
name looks public) is refused too, because the address checked is the one aiohttp
connects to.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult

from herald.consumers.channels.base import Outcome
from herald.consumers.channels.webhook import WebhookChannel
from herald.streams.settings import Settings
from tests.consumers.channels.conftest import WEBHOOK_SECRET, WebhookReceiver
from tests.consumers.helpers.messages import message


class Rebinding(AbstractResolver):
    """Maps every name to 127.0.0.1 and counts the lookups."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        return [{"hostname": host, "host": "127.0.0.1", "port": port,
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


async def send_once(settings: Settings, url: str, resolver: AbstractResolver | None = None
                    ) -> tuple[Outcome, str]:
    channel = WebhookChannel(settings, resolver=resolver)
    try:
        result = await channel.send(message("webhook", url, secret=WEBHOOK_SECRET))
    finally:
        await channel.aclose()
    return result.outcome, result.detail


async def test_loopback_is_refused_by_default_and_no_request_arrives(
    channel_settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    default = channel_settings.replace(webhook_allow_cidrs="")
    outcome, detail = await send_once(default, webhook_receiver.url + "/hook")
    assert outcome is Outcome.FAILED
    assert detail.startswith("destination refused") and "loopback" in detail
    assert webhook_receiver.received == []


async def test_loopback_is_reached_once_when_allowed(
    channel_settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    allowed = channel_settings.replace(webhook_allow_cidrs="127.0.0.1/32")
    outcome, _ = await send_once(allowed, webhook_receiver.url + "/hook")
    assert outcome is Outcome.SENT
    assert len(webhook_receiver.received) == 1 and webhook_receiver.received[0].verified


async def test_a_public_looking_name_resolving_to_loopback_is_refused(
    channel_settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    port = webhook_receiver.url.rsplit(":", 1)[1]
    resolver = Rebinding()
    default = channel_settings.replace(webhook_allow_cidrs="")
    outcome, detail = await send_once(default, f"http://hooks.example.com:{port}/hook",
                                      resolver)
    assert resolver.lookups == ["hooks.example.com"]
    assert outcome is Outcome.FAILED, detail
    assert "hooks.example.com resolves to 127.0.0.1, a loopback address" in detail
    assert webhook_receiver.received == []
    # the same name reaches the receiver once the operator allows loopback
    allowed = channel_settings.replace(webhook_allow_cidrs="127.0.0.0/8")
    outcome, _ = await send_once(allowed, f"http://hooks.example.com:{port}/hook", Rebinding())
    assert outcome is Outcome.SENT and len(webhook_receiver.received) == 1


async def test_redirects_are_still_refused(
    channel_settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    outcome, detail = await send_once(channel_settings, webhook_receiver.url + "/moved")
    assert outcome is Outcome.FAILED and "301" in detail
    assert len(webhook_receiver.received) == 0
