"""The SSRF classifier as a pure function over a table (no connection is ever opened)."""

from __future__ import annotations

import ipaddress

import pytest

from herald.streams.egress import parse_cidrs, refusal, url_refusal

REFUSED = [
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"),
    ("169.254.169.254", "link-local"), ("172.16.0.1", "private"), ("172.31.255.1", "private"),
    ("192.0.0.170", "IETF"), ("192.0.2.7", "documentation"), ("192.88.99.1", "6to4 relay"),
    ("192.168.1.1", "private"), ("198.18.0.1", "benchmarking"),
    ("198.51.100.3", "documentation"), ("203.0.113.9", "documentation"),
    ("224.0.0.251", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"),
    ("::", "unspecified"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"), ("::127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("64:ff9b:1::1", "NAT64"),
    ("2002:7f00:1::1", "loopback"), ("2002:c0a8:101::1", "private"),
    ("2001::1", "IETF"), ("2001:db8::1", "documentation"), ("100::1", "discard"),
    ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"),
    ("fe80::1", "link-local"), ("fec0::1", "site-local"), ("ff02::1", "multicast"),
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "172.32.0.1", "100.128.0.1",
           "2606:4700:4700::1111", "2a00:1450:4001:80e::200e", "::ffff:8.8.8.8",
           "2002:0808:0808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_every_internal_range_is_refused_with_its_name(address: str, reason: str) -> None:
    why = refusal(ipaddress.ip_address(address))
    assert why is not None and reason in why, (address, why)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_lets_a_range_through_even_inside_an_ipv6_form() -> None:
    allow = parse_cidrs("10.1.0.0/16, fd00::/8,127.0.0.1")
    assert refusal(ipaddress.ip_address("10.1.2.3"), allow) is None
    assert refusal(ipaddress.ip_address("::ffff:10.1.2.3"), allow) is None
    assert refusal(ipaddress.ip_address("fd00::5"), allow) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert refusal(ipaddress.ip_address("10.2.0.1"), allow) == "private"
    assert refusal(ipaddress.ip_address("127.0.0.2"), allow) == "loopback"
    with pytest.raises(ValueError):
        parse_cidrs("10.0.0.0/33")


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8080/internal-admin", "loopback"),
    ("http://[::1]/x", "loopback"),
    ("http://[::ffff:169.254.169.254]/latest/meta-data", "link-local"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("http://localhost:9000/", "local name"),
    ("http://printer.local/", "local name"),
    ("http://metadata.google.internal/", "local name"),
])
def test_urls_refused_before_any_lookup(url: str, reason: str) -> None:
    why = url_refusal(url)
    assert why is not None and reason in why, why


def test_public_urls_and_allowed_literals_pass() -> None:
    assert url_refusal("ftp://example.com/") is None  # not a webhook URL: the channel fails it
    assert url_refusal("https://hooks.example.com/h?x=1") is None
    assert url_refusal("http://8.8.8.8/") is None
    assert url_refusal("http://127.0.0.1:9/h", parse_cidrs("127.0.0.1/32")) is None
