"""The answers of the API as typed dictionaries (the OpenAPI document's schemas)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Published(TypedDict):
    """``POST /v1/notifications``: 201 appended, or 200 ``duplicate`` (the first id)."""

    id: str
    position: str
    partition: int
    duplicate: bool
    kind: Literal["created", "scheduled", "digest"]


class BatchItemResult(TypedDict, total=False):
    index: int
    status: int  # 201, 200 (duplicate) or 422
    id: str
    position: str
    partition: int
    duplicate: bool
    kind: str
    detail: str
    errors: list[dict[str, str]]


class BatchResult(TypedDict):
    results: list[BatchItemResult]
    created: int
    duplicates: int
    failed: int


class InboxItem(TypedDict):
    id: str
    category: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: str
    read_at: str | None
    archived: bool
    position: str


class InboxPage(TypedDict, total=False):
    items: list[InboxItem]
    next_cursor: str | None
    unread_count: int
    as_of: str


class ChannelStatus(TypedDict, total=False):
    state: Literal["pending", "sent", "failed", "skipped", "expired", "scheduled"]
    attempts: int
    last_error: str | None
    updated_at: str | None
    last_attempt_at: str | None
    sent_at: str | None
    next_attempt_at: str | None
    in_inbox: bool
    read_at: str | None
    archived: bool


class NotificationStatus(TypedDict, total=False):
    id: str
    user: str
    category: str
    title: str
    body: str | None
    data: dict[str, Any] | None
    created_at: str | None
    expires_at: str | None
    scheduled_for: str | None
    channels: dict[str, ChannelStatus]


class Cancelled(TypedDict, total=False):
    cancel_key: str
    status: Literal["projected", "accepted"]
    count: int
    cancelled: list[dict[str, Any]]
    user: str
    id: str
    position: str


class Preferences(TypedDict):
    user: str
    preferences: dict[str, dict[str, bool]]
    updated_at: str | None


class Profile(TypedDict, total=False):
    user: str
    phone: str | None
    email: str | None
    wechat_openid: str | None
    webhook_url: str | None
    webhook_secret_set: bool
    disabled: dict[str, str | None]
    updated_at: str | None


# An inbox action answers the item as it now is, or 202 ``{"status": "accepted", ...}``
# when the projector is behind (the event still applies, in order).
ActionResult = dict[str, Any]
