"""The SSRF guard at send time: an aiohttp resolver that hands out only callable addresses.

aiohttp connects to exactly the addresses its resolver returns, so checking them
here (streams/egress.py) means the address checked is the address connected to: a
name whose DNS answer changes between a check and the connection (DNS rebinding)
cannot slip through, because there is no second lookup. A name with any refused
address is refused as a whole (a rebinding answer may mix a public and a private
one). IP literals never reach a resolver; :func:`destination_refusal` checks the
URL itself first.

With ``HERALD_WEBHOOK_PROXY`` the egress proxy resolves and connects (it is the
operator's enforcement point, as Standard Webhooks recommends); Herald still refuses
literal and local names, and the proxy's own address is not checked (the operator
chose it).

Failure modes: :class:`DestinationRefused` (an OSError, which aiohttp wraps in
``ClientConnectorDNSError``) when every address of a name is refused; the inner
resolver's own errors otherwise.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from herald.streams.egress import IPNetwork, refusal, url_refusal


class DestinationRefused(OSError):
    """Raised by :class:`GuardedResolver` when a name resolves to a refused address."""


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (the default: the system's), then refuses what the
    classifier refuses; ``allow`` ranges always pass."""

    def __init__(self, allow: Iterable[IPNetwork] = (),
                 inner: AbstractResolver | None = None) -> None:
        self._allow = tuple(allow)
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            address = ipaddress.ip_address(answer["host"].split("%", 1)[0])
            reason = refusal(address, self._allow)
            if reason is not None:
                raise DestinationRefused(
                    f"destination refused: {host} resolves to {address}, a {reason} address "
                    "(HERALD_WEBHOOK_ALLOW_CIDRS lets an internal receiver through)")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def destination_refusal(url: str, allow: Iterable[IPNetwork] = ()) -> str | None:
    """The status detail for a URL refused before any lookup, or None."""
    reason = url_refusal(url, allow)
    return None if reason is None else f"destination refused: the URL {reason}"


def refused_cause(exc: BaseException) -> DestinationRefused | None:
    """The :class:`DestinationRefused` inside an aiohttp connection error, if any."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, DestinationRefused):
            return seen
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return None
