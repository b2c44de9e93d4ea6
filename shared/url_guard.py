"""SSRF protection for user-supplied URLs.

A URL is checked after DNS resolution: every address its host resolves to must be a
public unicast address, unless it falls in a network the operator exempted with
``HERALD_ALLOW_PRIVATE_URLS``. IPv6 encodings of IPv4 addresses (mapped, 6to4,
NAT64, Teredo) are unwrapped and judged as the IPv4 address they carry.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from shared.errors import Permanent, Retry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_EXTRA_FORBIDDEN = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


class UnsafeUrl(Permanent):
    pass


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> bool:
    if any(ip.version == net.version and ip in net for net in allow):
        return False
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_forbidden(inner, allow)
    if any(ip.version == net.version and ip in net for net in _EXTRA_FORBIDDEN):
        return True
    return not ip.is_global or ip.is_multicast


class UrlGuard:
    def __init__(self, allow: Sequence[IPNetwork] = ()) -> None:
        self.allow = tuple(allow)

    async def check(self, url: str) -> None:
        """Raise ``UnsafeUrl`` unless every address of the URL's host is allowed."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            raise UnsafeUrl(f"malformed URL: {exc}") from exc
        if parts.scheme not in ("http", "https"):
            raise UnsafeUrl(f"scheme {parts.scheme!r} is not allowed")
        if not host:
            raise UnsafeUrl("URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise UnsafeUrl(f"bad port in URL: {exc}") from exc
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise Retry(f"cannot resolve {host}: {exc}") from exc
        except (UnicodeError, ValueError) as exc:  # a label IDNA cannot encode, a NUL
            raise UnsafeUrl(f"invalid host in URL: {exc}") from exc
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if is_forbidden(ip, self.allow):
                raise UnsafeUrl(f"{host} resolves to {ip}, a non-public address")
