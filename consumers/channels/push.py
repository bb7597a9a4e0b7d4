"""The ``push`` channel: a notification to every registered device of the user.

A user registers devices (``POST /v1/users/{user}/devices``: ``fcm`` or ``apns`` and
the token the app got); a push goes to each of them, at once, through the provider of
its platform (HERALD_PUSH_PROVIDERS: fcm.py, apns.py). One result sums them up:

- any device still to retry (a provider busy, a timeout) → ``retry`` with
  ``remaining`` = those devices, so the next attempt reaches only them (the ones that
  got it are not sent it again);
- else any device reached → ``sent`` (the provider ids, comma-separated);
- else ``failed`` with the first device's reason;

and in every case ``stale`` lists the devices whose tokens the provider reported
invalid (delivery appends ``device.removed`` for each). A device of a platform that
is not enabled fails without a request.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence

from herald.consumers.channels.base import (
    Device,
    OutboundMessage,
    Outcome,
    Provider,
    Recipient,
    SendResult,
    error_detail,
)

MAX_IDS_CHARS = 300


def device_message(message: OutboundMessage, device: Device) -> OutboundMessage:
    """The message to one device (its token the address: its own idempotency key)."""
    return dataclasses.replace(message, recipient=Recipient(address=device.token),
                               devices=(device,))


def summarize(results: Sequence[tuple[Device, SendResult]]) -> SendResult:
    """One result for a send to several devices (see the module doc)."""
    stale = tuple(d for _, r in results for d in r.stale)
    retry = [(d, r) for d, r in results if r.outcome is Outcome.RETRY]
    sent = [(d, r) for d, r in results if r.outcome is Outcome.SENT]
    failed = [(d, r) for d, r in results if r.outcome not in (Outcome.RETRY, Outcome.SENT)]
    notes = "; ".join(f"{d.platform} {d.id}: {r.detail}" for d, r in (*retry, *failed))
    if retry:
        waits = [r.retry_after_s for _, r in retry if r.retry_after_s is not None]
        return dataclasses.replace(
            SendResult.retry(f"{len(sent)} of {len(results)} devices reached; {notes}",
                             code=retry[0][1].code, retry_after_s=max(waits) if waits else None),
            stale=stale, remaining=tuple(d.id for d, _ in retry))
    if sent:
        ids = ",".join(r.provider_id or "" for _, r in sent)
        return dataclasses.replace(SendResult.sent(ids[:MAX_IDS_CHARS] or None,
                                                   code=sent[0][1].code),
                                   detail=notes[:300], stale=stale)
    first = failed[0][1]
    return SendResult.failed(f"no device reached; {notes}", code=first.code, stale=stale)


class PushChannel:
    """Fans one push out to the user's devices through the providers by platform."""

    name = "push"
    contact = "devices"

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = dict(providers)
        self.provider = "+".join(sorted(self.providers)) or "none"

    async def send(self, message: OutboundMessage) -> SendResult:
        if not message.devices:
            return SendResult.failed("the user has no registered device")
        results = await asyncio.gather(*(self._one(message, d) for d in message.devices))
        return summarize(list(zip(message.devices, results, strict=True)))

    async def _one(self, message: OutboundMessage, device: Device) -> SendResult:
        provider = self.providers.get(device.platform)
        if provider is None:
            return SendResult.failed(f"push to {device.platform} is not enabled "
                                     "(HERALD_PUSH_PROVIDERS)")
        try:
            return await provider.send(device_message(message, device))
        except Exception as exc:  # a bug in a provider: retry this device, loudly upstream
            return SendResult.retry(error_detail(exc))

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
