"""A factory for outbound messages used by the channel tests."""

from __future__ import annotations

from typing import Any

from herald.consumers.channels.base import OutboundMessage, Recipient

CHINESE_TITLE = "订单已发货 🚚"
CHINESE_BODY = "您的订单 #1024 已发货，预计明天送达。\n感谢您的耐心等待！<b>不是标签</b> & 引号\"'"


def message(
    channel: str,
    address: str,
    *,
    secret: str | None = None,
    notification_id: str = "01HZX3J4K5M6N7P8Q9R0S1T2V3",
    attempt: int = 1,
    **fields: Any,
) -> OutboundMessage:
    values: dict[str, Any] = {
        "user": "u-42",
        "title": CHINESE_TITLE,
        "body": CHINESE_BODY,
        "category": "orders",
        "data": {"order_id": 1024, "备注": "加急"},
        "created_at": 1_700_000_000_123,
    }
    values.update(fields)
    return OutboundMessage(
        notification_id=notification_id,
        channel=channel,
        recipient=Recipient(address=address, secret=secret),
        attempt=attempt,
        **values,
    )
