"""SSRF: user-supplied URLs may only reach public addresses."""

from __future__ import annotations

import ipaddress

import pytest

from services.dispatcher.url_guard import UnsafeUrl, UrlGuard, is_forbidden


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.2.10",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:a9fe:a9fe::1",  # 6to4 wrapping 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))


def test_the_operator_allow_list_exempts_a_private_network() -> None:
    allow = [ipaddress.ip_network("10.20.0.0/16")]
    assert not is_forbidden(ipaddress.ip_address("10.20.1.1"), allow)
    assert is_forbidden(ipaddress.ip_address("10.21.1.1"), allow)
    assert not is_forbidden(ipaddress.ip_address("::ffff:10.20.1.1"), allow)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "non-public"),
        ("http://localhost/hook", "non-public"),
        ("http://[::1]/hook", "non-public"),
        ("http://169.254.169.254/latest/meta-data/", "non-public"),
        ("http://2130706433/", "non-public"),  # 127.0.0.1 as a decimal integer
        ("ftp://example.com/", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "bad port"),
    ],
)
async def test_unsafe_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        await UrlGuard().check(url)


async def test_an_allowed_private_network_passes() -> None:
    await UrlGuard([ipaddress.ip_network("127.0.0.0/8")]).check("http://127.0.0.1:9/hook")
