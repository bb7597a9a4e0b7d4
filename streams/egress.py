"""Where Herald may send a request whose URL a caller chose (SSRF guard): a pure classifier.

A webhook URL comes from a caller (a user's profile, or ``recipients.webhook`` of one
notification), so without a guard one service key could aim the webhook worker at
the operator's network or a cloud metadata endpoint (OWASP API7:2023). This module
decides, for one IP address, whether it may be called: :func:`refusal` names the
range an address falls in (loopback, private, link-local, CGNAT, multicast,
reserved, unique-local, documentation, ...) or None for a public address. IPv6
forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the IPv4 address inside.

``HERALD_WEBHOOK_ALLOW_CIDRS`` lets chosen ranges through (an internal receiver).

The check runs twice: when a profile or notification is accepted (the API, on what
the URL itself says: an IP literal or a name that is local by definition — no DNS
lookup on the request path), and at send time on every address the name resolves to
(consumers/channels/egress.py), which is also the address connected to.

Failure modes: :func:`parse_cidrs` raises ValueError for a malformed range; nothing
else raises.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (unspecified)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast (reserved)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6: tuple[tuple[str, str], ...] = (  # the first range that holds an address names it
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "IETF protocol assignments (Teredo, ORCHID, ...)"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason) for cidr, reason in _V4 + _V6
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")
# Names that point at the local machine or network whatever DNS says.
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
LOCAL_NAMES = ("localhost", "localhost.localdomain")


def embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPAT and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be called (the range it is in), or None when it may.

    An address inside an ``allow`` range may always be called.
    """
    inner = embedded_v4(address)
    allowed = tuple(allow)
    if any(address in net or (inner is not None and inner in net) for net in allowed):
        return None
    if inner is not None:
        reason = refusal(inner)
        return None if reason is None else f"{reason} (inside {address})"
    for net, reason in _RANGES:
        if address.version == net.version and address in net:
            return reason
    if not address.is_global:
        return "reserved"
    return None


def parse_cidrs(text: str) -> tuple[IPNetwork, ...]:
    """``"10.1.0.0/16, fd00::/8, 127.0.0.1"`` → networks; ValueError when malformed."""
    out: list[IPNetwork] = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            out.append(ipaddress.ip_network(part, strict=False))
    return tuple(out)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally (``[::1]`` too), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def url_refusal(url: str, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why a caller's URL is refused without looking anything up, or None.

    Refused: an http(s) URL whose host is an IP literal in a refused range, or a name that is
    local by definition (``localhost``, ``*.local``, ``*.internal``, ...; left to the
    send-time check when an allow-list is set). A name
    that resolves to a refused address is caught at send time; what is not an http(s)
    URL with a host is left to the channel, which fails it as an invalid URL.
    """
    allowed = tuple(allow)
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None  # not a URL at all: the channel fails it ("invalid webhook URL")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    host = parsed.host.rstrip(".").lower()
    address = literal_address(host)
    if address is not None:
        reason = refusal(address, allowed)
        return None if reason is None else f"names {address}, a {reason} address"
    if not allowed and (host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES)):
        return f"names {host!r}, a local name"
    return None
