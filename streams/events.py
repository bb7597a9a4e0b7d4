"""Event types: the envelope and the payloads stored in the log.

Payloads are frozen, slotted, keyword-only dataclasses with past-tense names. Each
has a stable ``TYPE`` string and an integer ``VERSION``; the registry maps
``(type, version)`` to the class, never a Python import path, so a rename can't
break stored data. Unknown types and versions are dead-lettered by consumers.

Positions are Redis stream entry ids (``"1700000000000-0"``) of the partition
stream; they order all events of one user.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

from herald.streams.ids import new_id, now_ms
from herald.streams.partitions import partition_for

# ----------------------------------------------------------------- payloads

CRITICAL = "critical"  # the one priority that changes routing (NotificationContent)
TEMPLATES_USER = "~templates"  # the reserved user whose events are the templates
WORKFLOWS_USER = "~workflows"  # the reserved user whose events are the workflow definitions


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """Base of every payload; subclasses set TYPE and VERSION."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationContent(Payload):
    """Fields shared by everything that becomes an inbox item or a delivery.

    ``notification_id`` is None when the notification's id is the event's id;
    the scheduler sets it so a fired reminder keeps the id it was scheduled with.
    ``expires_at`` (ms) is the time-to-live: no channel sends it after that.
    ``recipients`` overrides the profile's addresses for this notification.

    Routing and templates (None means "as before", so older entries decode and
    project exactly as they did): ``priority`` is ``"critical"`` for a send that
    skips digests and quiet hours and goes ahead of queued bulk sends (None:
    normal); ``inbox`` False keeps it out of the inbox (the API sets it when
    ``channels`` leaves out ``in_app``; None: in the inbox); ``template`` names what
    rendered it, ``{"id", "version", "locale"}``, and ``variants`` holds the rendered
    per-channel content (``{"sms": {"text", "template_code", "params"}, ...}``,
    consumers/templates/), sealed like the title.
    """

    title: str
    body: str = ""
    category: str = "general"
    data: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = ("in_app",)
    notification_id: str | None = None
    expires_at: int | None = None
    recipients: dict[str, str] = field(default_factory=dict)
    priority: str | None = None
    inbox: bool | None = None
    template: dict[str, Any] | None = None
    variants: dict[str, Any] | None = None

    @property
    def critical(self) -> bool:
        return self.priority == CRITICAL

    @property
    def in_inbox(self) -> bool:
        return self.inbox is not False


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationCreated(NotificationContent):
    """A notification for the user's inbox and channels.

    ``digest_of`` is set on a digest summary only: ``{"key", "window_end",
    "positions"}``, the collected items it covers (in clear: the summary's data, which
    lists them with their content, is sealed; the projection needs only this).
    """

    TYPE: ClassVar[str] = "notification.created"
    digest_of: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationScheduled(NotificationContent):
    """Becomes a NotificationCreated at ``deliver_at`` (ms) unless cancelled first."""

    TYPE: ClassVar[str] = "notification.scheduled"
    deliver_at: int
    cancel_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleCancelled(Payload):
    """Cancels every not-yet-due schedule under ``cancel_key`` (or one id)."""

    TYPE: ClassVar[str] = "schedule.cancelled"
    cancel_key: str | None = None
    notification_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestItemAdded(NotificationContent):
    """One item collected into the user's digest bucket ``digest_key``.

    The bucket closes at ``window_end`` (ms) and is sent as one summary.
    """

    TYPE: ClassVar[str] = "digest.item_added"
    digest_key: str
    window_end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationRead(Payload):
    TYPE: ClassVar[str] = "notification.read"
    notification_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationUnread(Payload):
    TYPE: ClassVar[str] = "notification.unread"
    notification_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationArchived(Payload):
    TYPE: ClassVar[str] = "notification.archived"
    notification_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationDeleted(Payload):
    TYPE: ClassVar[str] = "notification.deleted"
    notification_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AllRead(Payload):
    """Marks read every item at or below ``up_to`` (a position; None = this event's)."""

    TYPE: ClassVar[str] = "notification.all_read"
    up_to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxSeen(Payload):
    """The user opened the inbox: every item at or below ``up_to`` (None = this event's
    position) is *seen* — the badge clears — without being read."""

    TYPE: ClassVar[str] = "notification.seen"
    up_to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationUnarchived(Payload):
    """An archived item back in the inbox, read or unread as it was."""

    TYPE: ClassVar[str] = "notification.unarchived"
    notification_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSnoozed(Payload):
    """The item is hidden until ``until`` (ms), then back as unread: the scheduler
    appends :class:`NotificationWoke` at that time."""

    TYPE: ClassVar[str] = "notification.snoozed"
    notification_id: str
    until: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationWoke(Payload):
    """A snoozed item is back as unread (appended by the scheduler at the snooze's
    ``until``; a woke whose ``until`` is not the item's current snooze changes nothing)."""

    TYPE: ClassVar[str] = "notification.woke"
    notification_id: str
    until: int


BULK_ACTIONS = ("seen", "read", "archived")


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxBulkMarked(Payload):
    """One action on every matching item at or below ``up_to`` (None = this event's
    position): ``action`` is ``seen``, ``read`` or ``archived``; ``category`` (None =
    any) filters the items."""

    TYPE: ClassVar[str] = "notification.bulk_marked"
    action: str
    category: str | None = None
    up_to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSubscribed(Payload):
    """The user follows ``topic`` (of their tenant): what is published to it from the
    moment a fan-out reaches them lands in their inbox."""

    TYPE: ClassVar[str] = "topic.subscribed"
    topic: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicUnsubscribed(Payload):
    """The user leaves ``topic``: a fan-out that has not reached them yet skips them."""

    TYPE: ClassVar[str] = "topic.unsubscribed"
    topic: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PreferencesChanged(Payload):
    """Replaces the user's preferences: ``{category: {channel: bool}}``.

    ``"*"`` as a category is the default for categories not listed.
    """

    TYPE: ClassVar[str] = "preferences.changed"
    preferences: dict[str, dict[str, bool]]
    # {"start": "22:00", "end": "08:00", "timezone": "Asia/Shanghai"}: push channels
    # hold non-critical sends until the end (consumers/delivery/quiet.py). None: none.
    quiet_hours: dict[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileChanged(Payload):
    """Replaces the user's delivery addresses (absent fields are cleared)."""

    TYPE: ClassVar[str] = "profile.changed"
    phone: str | None = None
    email: str | None = None
    wechat_openid: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    wecom_userid: str | None = None
    locale: str | None = None  # BCP 47 (``zh-CN``): the language templates render in


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactChanged(Payload):
    """Sets one field of the user's profile (``kind``: phone, email, wechat_openid,
    wecom_userid, locale) without touching the others; ``value`` None removes it. A
    later ProfileChanged replaces the whole profile, these fields included."""

    TYPE: ClassVar[str] = "contact.changed"
    kind: str
    value: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegistered(Payload):
    """A device of the user that receives push notifications: ``platform`` ``fcm`` or
    ``apns``, its provider ``token`` (sealed), and ``device_id``, a digest of both
    (registering the same token again changes nothing but its time)."""

    TYPE: ClassVar[str] = "device.registered"
    device_id: str
    platform: str
    token: str
    app: str | None = None  # APNs topic (bundle id) when it differs from HERALD_APNS_TOPIC


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRemoved(Payload):
    """The device no longer receives pushes: removed by the user or a service, or by
    delivery when the provider reported its token invalid (``reason`` says which)."""

    TYPE: ClassVar[str] = "device.removed"
    device_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateRegistered(Payload):
    """Version ``version`` of template ``template_id``: the checked definition
    (consumers/templates/definition.py). An event of :data:`TEMPLATES_USER`, so every
    template lives in that user's partition; versions are immutable."""

    TYPE: ClassVar[str] = "template.registered"
    template_id: str
    version: int
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRegistered(Payload):
    """Version ``version`` of workflow ``workflow_key``: the checked definition
    (consumers/workflows/definition.py). An event of :data:`WORKFLOWS_USER`; versions
    are immutable (a run keeps the version it started with)."""

    TYPE: ClassVar[str] = "workflow.registered"
    workflow_key: str
    version: int
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTriggered(Payload):
    """A run of version ``version`` of ``workflow_key`` for the event's user starts; the
    run's id is the event's id. ``data`` (sealed) is what conditions and templates read;
    ``cancel_key`` stops the run (``DELETE /v1/scheduled/{cancel_key}``)."""

    TYPE: ClassVar[str] = "workflow.triggered"
    workflow_key: str
    version: int
    data: dict[str, Any] = field(default_factory=dict)
    cancel_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStepDecided(Payload):
    """One decision of a run about its step ``index`` (id ``step``), appended by the
    ``workflows`` role: ``outcome`` is ``sent``, ``skipped``, ``delayed``, ``elapsed``,
    ``waiting``, ``matched`` or ``timed_out``. ``at`` is the log position the decision
    was taken as of; ``condition`` and ``result`` the step's condition and its value;
    ``data`` (sealed) the condition's inputs; ``notification_id`` the sent
    notification; ``until`` (ms) when a delay or a wait ends; ``detail`` more words."""

    TYPE: ClassVar[str] = "workflow.step_decided"
    run_id: str
    step: str
    index: int
    outcome: str
    at: str
    condition: str | None = None
    result: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)
    notification_id: str | None = None
    until: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRunEnded(Payload):
    """The run is over: ``outcome`` ``completed`` (past its last step), ``stopped`` (a
    wait matched with ``on_match: stop``), ``cancelled`` (cancel key or ``cancel_on``)
    or ``failed`` (``detail`` says why). ``at`` is the position it was decided as of;
    ``timer`` the pending timer it removes ("" = none)."""

    TYPE: ClassVar[str] = "workflow.run_ended"
    run_id: str
    outcome: str
    at: str
    timer: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowTimerFired(Payload):
    """The scheduler's wake-up of a run's delay or wait (step ``index``) due at
    ``until`` (ms)."""

    TYPE: ClassVar[str] = "workflow.timer_fired"
    run_id: str
    index: int
    until: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessEventReceived(Payload):
    """A business event of the user (``name``, e.g. ``order.paid``) with its ``data``
    (sealed): what a workflow's ``wait_for`` and ``cancel_on`` match."""

    TYPE: ClassVar[str] = "business.event"
    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserErased(Payload):
    """Forgets the user: inbox, read state, preferences, profile, pending schedules and
    digests go (``herald erase``). Their data key was deleted first, so every sealed
    copy of their content, in the log and archive included, is unreadable."""

    TYPE: ClassVar[str] = "user.erased"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokensRevoked(Payload):
    """"Sign out everywhere": the user's tokens issued before ``before`` (ms since the
    epoch) are refused from now on, and their open live streams are closed."""

    TYPE: ClassVar[str] = "user.tokens_revoked"
    before: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryEvent(Payload):
    """Base of delivery outcomes: one notification on one channel."""

    notification_id: str
    channel: str
    attempt: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempted(DeliveryEvent):
    TYPE: ClassVar[str] = "delivery.attempted"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySucceeded(DeliveryEvent):
    TYPE: ClassVar[str] = "delivery.succeeded"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFailed(DeliveryEvent):
    """``final`` is True when no further attempt will be made."""

    TYPE: ClassVar[str] = "delivery.failed"
    final: bool = False
    retry_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySkipped(DeliveryEvent):
    TYPE: ClassVar[str] = "delivery.skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryExpired(DeliveryEvent):
    TYPE: ClassVar[str] = "delivery.expired"


PAYLOAD_TYPES: tuple[type[Payload], ...] = (
    NotificationCreated,
    NotificationScheduled,
    ScheduleCancelled,
    DigestItemAdded,
    NotificationRead,
    NotificationUnread,
    NotificationArchived,
    NotificationDeleted,
    AllRead,
    PreferencesChanged,
    ProfileChanged,
    ContactChanged,
    DeviceRegistered,
    DeviceRemoved,
    TemplateRegistered,
    UserErased,
    InboxSeen,
    NotificationUnarchived,
    NotificationSnoozed,
    NotificationWoke,
    InboxBulkMarked,
    DeliveryAttempted,
    DeliverySucceeded,
    DeliveryFailed,
    DeliverySkipped,
    DeliveryExpired,
    TokensRevoked,
    TopicSubscribed,
    TopicUnsubscribed,
    WorkflowRegistered,
    WorkflowTriggered,
    WorkflowStepDecided,
    WorkflowRunEnded,
    WorkflowTimerFired,
    BusinessEventReceived,
)

REGISTRY: dict[tuple[str, int], type[Payload]] = {
    (cls.TYPE, cls.VERSION): cls for cls in PAYLOAD_TYPES
}
TYPES: dict[str, type[Payload]] = {cls.TYPE: cls for cls in PAYLOAD_TYPES}


# ----------------------------------------------------------------- envelope


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """What every log entry carries around its payload.

    ``id`` is a Herald id (see streams/ids.py) naming the partition; ``time`` is
    milliseconds since the epoch, set by the producer; ``idempotency_key`` is the
    producer's key, when one was given; ``correlation`` ties events of one flow;
    ``sealed``, when set, holds the payload's personal fields encrypted with the
    user's data key, and those fields of ``payload`` are blank (streams/sealing.py);
    ``actor`` says who appended it through the API: ``key:<key id>`` (never the key)
    or ``user:<id>`` (informational: nothing is derived from it).
    """

    id: str
    user: str
    time: int
    payload: Payload
    idempotency_key: str | None = None
    correlation: str | None = None
    sealed: bytes | None = None
    actor: str | None = None

    @property
    def type(self) -> str:
        return self.payload.TYPE

    @property
    def version(self) -> int:
        return self.payload.VERSION

    @property
    def notification_id(self) -> str:
        """The notification an event is about (its own id for a new notification)."""
        explicit = getattr(self.payload, "notification_id", None)
        return explicit if explicit else self.id


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an event landed: its id, partition and stream position.

    ``duplicate`` is True when an earlier append under the same idempotency key
    answered instead (nothing new was appended); ``conflict`` is also True when that
    earlier append had another payload (its digest differed): the key was refused.
    """

    id: str
    partition: int
    position: str
    duplicate: bool = False
    conflict: bool = False


def new_envelope(
    user: str,
    payload: Payload,
    partitions: int,
    *,
    idempotency_key: str | None = None,
    correlation: str | None = None,
    time_ms: int | None = None,
) -> Envelope:
    """A new envelope for ``user`` with a fresh id of the user's partition (of
    ``partitions``), stamped ``time_ms`` (default now), its actor the caller's
    (:data:`APPENDED_BY`)."""
    ts = now_ms() if time_ms is None else time_ms
    return Envelope(id=new_id(partition_for(user, partitions), ts), user=user, time=ts,
                    payload=payload, idempotency_key=idempotency_key, correlation=correlation,
                    actor=APPENDED_BY.get())


# Who the current task appends for (set by the API per request: ``key:<id>`` or
# ``user:<id>``); None elsewhere (workers, the CLI).
APPENDED_BY: ContextVar[str | None] = ContextVar("herald_appended_by", default=None)
