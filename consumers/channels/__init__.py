"""Delivery channels: one interface (base.py), one module per provider.

:func:`open_channel` builds a channel by name from settings; every channel must
be closed with ``await channel.aclose()``.
"""

from __future__ import annotations

from typing import Any

from herald.consumers.channels.base import (
    Channel,
    OutboundMessage,
    Outcome,
    Recipient,
    SendResult,
    idempotency_key,
    recipient_for,
)
from herald.streams.settings import Settings

CHANNEL_NAMES: tuple[str, ...] = ("webhook", "sms", "wechat", "email")


def open_channel(name: str, settings: Settings, redis: Any) -> Channel:
    """The channel called ``name``; raises ValueError for an unknown name.

    ``redis`` is the process's async client (WeChat keeps its token there).
    """
    if name == "webhook":
        from herald.consumers.channels.webhook import WebhookChannel

        return WebhookChannel(settings)
    if name == "sms":
        from herald.consumers.channels.sms import SmsChannel

        return SmsChannel(settings)
    if name == "wechat":
        from herald.consumers.channels.wechat import WeChatChannel

        return WeChatChannel(settings, redis)
    if name == "email":
        from herald.consumers.channels.email import EmailChannel

        return EmailChannel(settings)
    raise ValueError(f"unknown channel {name!r}; known: {', '.join(CHANNEL_NAMES)}")


__all__ = [
    "CHANNEL_NAMES",
    "Channel",
    "OutboundMessage",
    "Outcome",
    "Recipient",
    "SendResult",
    "idempotency_key",
    "open_channel",
    "recipient_for",
]
