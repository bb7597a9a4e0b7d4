"""Delivery channels: one provider interface (base.py), one module per provider.

:func:`open_channel` builds a channel by name with the provider(s) the settings
choose (registry.py); every channel must be closed with ``await channel.aclose()``.
"""

from __future__ import annotations

from herald.consumers.channels.base import (
    Channel,
    Device,
    OutboundMessage,
    Outcome,
    Provider,
    Recipient,
    SendResult,
    idempotency_key,
    recipient_for,
)
from herald.consumers.channels.registry import PROVIDERS, chosen, open_channel

CHANNEL_NAMES: tuple[str, ...] = ("webhook", "sms", "wechat", "email", "push")

__all__ = [
    "CHANNEL_NAMES",
    "PROVIDERS",
    "Channel",
    "Device",
    "OutboundMessage",
    "Outcome",
    "Provider",
    "Recipient",
    "SendResult",
    "chosen",
    "idempotency_key",
    "open_channel",
    "recipient_for",
]
