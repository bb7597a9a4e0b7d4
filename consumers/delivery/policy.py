"""Delivery decisions that need no I/O: preferences, recipients, expiry.

Preferences (``PreferencesChanged``: ``{category: {channel: bool}}``) are opt-out:
a channel is allowed unless the most specific rule says false. Precedence, most
specific first: ``prefs[category][channel]``, ``prefs["*"][channel]``; nothing
said means allowed. A category in HERALD_CRITICAL_CATEGORIES is always delivered.

The recipient comes from the notification's ``recipients`` override or the
user's profile field the channel's provider reads (consumers.channels.base.recipient_for;
``Provider.contact``), or, for ``push``, the user's registered devices. An endpoint
that asked to be disabled (webhook 410, see consumers/delivery/projection.py) is
skipped until the user's profile is set again. Inside the user's quiet hours
(consumers/delivery/quiet.py) a send that is not critical is deferred to their end.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from herald.consumers.channels.base import PROFILE_FIELDS, Device, Recipient, recipient_for
from herald.consumers.delivery.jobs import Job
from herald.consumers.delivery.projection import address_digest, disabled_field
from herald.consumers.delivery.quiet import quiet_until

ANY_CATEGORY = "*"
ERASED = "the user's data was erased (herald erase): nothing to send"


def allowed(
    preferences: Mapping[str, Mapping[str, Any]], category: str, channel: str,
    critical: Collection[str] = (),
) -> bool:
    """Whether ``channel`` may carry a notification of ``category`` (see the module doc)."""
    if category in critical:
        return True
    for scope in (category, ANY_CATEGORY):
        rules = preferences.get(scope)
        if isinstance(rules, Mapping) and channel in rules:
            return bool(rules[channel])
    return True


def with_defaults(preferences: Mapping[str, Mapping[str, Any]],
                  defaults: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The user's preferences over their tenant's defaults (HERALD_TENANT_PREFERENCES):
    per category and channel, the user's own rule wins; the user's ``*`` beats only a
    default of the same ``*``."""
    if not defaults:
        return dict(preferences)
    merged: dict[str, Any] = {scope: dict(rules) for scope, rules in defaults.items()}
    for scope, rules in preferences.items():
        if isinstance(rules, Mapping):
            merged[scope] = {**merged.get(scope, {}), **rules}
    return merged


@dataclass(frozen=True, slots=True)
class Decision:
    """``send`` (with the job's recipient set), ``defer`` (the same, not before
    ``until`` ms: quiet hours), ``skip`` or ``expire``, and why."""

    action: str
    job: Job
    reason: str = ""
    until: int = 0


def opted_out(job: Job, preferences: Mapping[str, Mapping[str, Any]],
              critical: Collection[str] = ()) -> str | None:
    """Why the job must not be sent under these preferences, or None."""
    if allowed(preferences, job.category, job.channel, critical):
        return None
    return f"the user opted out of {job.channel} for category {job.category!r}"


def decide(
    job: Job, now_ms: int, profile: Mapping[str, str],
    preferences: Mapping[str, Mapping[str, Any]], critical: Collection[str] = (), *,
    contact: str | None = None, devices: tuple[Device, ...] = (),
    quiet: Mapping[str, str] | None = None,
) -> Decision:
    """The first decision about a fresh job (erasure, expiry, preferences, recipient,
    quiet hours). ``contact``: the profile field of the channel's provider."""
    if job.erased:
        return Decision("skip", job, ERASED)
    if job.expired(now_ms):
        return Decision("expire", job)
    reason = opted_out(job, preferences, critical)
    if reason is not None:
        return Decision("skip", job, reason)
    if job.channel == "push":
        if not devices:
            return Decision("skip", job, "no device: the user has registered none")
        ready = job.with_devices(devices)
    else:
        recipient = recipient_for(job.channel, profile, job.overrides, contact)
        if recipient is None:
            field_name = contact or PROFILE_FIELDS.get(job.channel, job.channel)
            return Decision("skip", job, f"no address: the user's profile has no {field_name} "
                                         "and the notification names no recipient")
        if disabled(profile, job.channel, recipient):
            return Decision("skip", job, f"the {job.channel} endpoint was disabled by its "
                                         "receiver (HTTP 410); set the profile again to "
                                         "re-enable")
        ready = job.with_recipient(recipient)
    until = None if job.critical else quiet_until(quiet, now_ms)
    if until is not None:
        return Decision("defer", ready, "quiet hours", until)
    return Decision("send", ready)


def disabled(profile: Mapping[str, str], channel: str, recipient: Recipient) -> bool:
    return disabled_field(channel, address_digest(recipient.address)) in profile
