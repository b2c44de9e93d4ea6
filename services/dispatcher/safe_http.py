"""Outbound HTTP that user-supplied URLs cannot point at private addresses.

``UrlGuard.check`` judges a URL by resolving its host before the request; a DNS
rebinding attacker answers that lookup with a public address and the lookup made a
moment later to connect with ``127.0.0.1``. Here aiohttp resolves through
``CheckingResolver``, which refuses the name if any answer is forbidden and hands
back only the addresses it checked; aiohttp connects to those, so there is no second
lookup to poison. Answers are not cached: every new connection looks the name up
again, and that answer is checked too. TLS is unaffected: aiohttp gives the URL's
host name to the TLS layer for SNI and certificate checks; only the TCP connection is
made to the checked address.

aiohttp never asks the resolver about an IP literal, so ``GuardedConnector`` judges a
literal host itself before every connection, in any form the socket layer would
accept (``[::1]``, ``2130706433``, ``0x7f.1``, ``127.1``; yarl keeps them as
written). It also refuses schemes other than http and https and a per-request proxy,
which would make the connection on our behalf to whatever the URL names; proxies from
the environment are not read (``trust_env=False``).

    guarded_client(allow, timeout=...)   user-supplied URLs (webhooks, chat webhooks)
    trusted_client(timeout=...)          operator-configured URLs (Telegram API, SendGrid)

Both are async context managers yielding an ``aiohttp.ClientSession``. A refusal
raises ``UnsafeUrl`` from the session's request; ``channels._http.call`` (the way
channels send, never following a redirect) turns it into a permanent failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

import aiohttp
import certifi
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.tracing import Trace

from .url_guard import IPAddress, IPNetwork, UnsafeUrl, is_forbidden

__all__ = [
    "CheckingResolver",
    "GuardedConnector",
    "Resolver",
    "SocketFactory",
    "guarded_client",
    "literal_address",
    "system_resolver",
    "trusted_client",
]


# (host, port) -> every address the host has; raises OSError when it has none
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
# makes the socket for (family, type, proto, canonname, sockaddr) before it connects
SocketFactory = Callable[[tuple[Any, ...]], socket.socket]

CONNECT_TIMEOUT = 5.0
MAX_CONNECTIONS = 100
# idle keep-alive connections are closed after this long (httpx's default before)
KEEPALIVE_SECONDS = 5.0
ALLOWED_SCHEMES = frozenset({"http", "https"})
# hosts whose literal-address verdict a connector remembers (names are re-resolved
# and checked on every new connection regardless)
VERDICTS_KEPT = 4096


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # scoped IPv6 addresses (fe80::1%eth0) keep their scope so the connect works
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in infos))


def literal_address(host: str) -> IPAddress | None:
    """The address an IP-literal host names, in any form ``inet_aton`` accepts
    (``2130706433``, ``0x7f.1``, ``127.1``) or IPv6; None for a name.

    A host with a colon that is no IPv6 address is refused: it cannot be checked.
    """
    with contextlib.suppress(OSError, ValueError):
        return ipaddress.IPv4Address(socket.inet_aton(host))
    if ":" not in host:
        return None
    try:
        return ipaddress.ip_address(unquote(host))  # fe80::1%25eth0 carries its zone
    except ValueError as exc:
        raise UnsafeUrl(f"{host} is not an address that can be checked") from exc


class CheckingResolver(AbstractResolver):
    """Resolve with ``resolver``; refuse the name if any address is forbidden, else
    answer with exactly the addresses that were checked."""

    def __init__(self, allow: Sequence[IPNetwork] = (), resolver: Resolver = system_resolver):
        self._allow = tuple(allow)
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self._resolver(host, port)
        except TimeoutError:  # before OSError: TimeoutError is one; aiohttp reports it
            raise
        except OSError as exc:
            raise OSError(exc.errno, f"cannot resolve {host}: {exc.strerror or exc}") from exc
        if not addresses:
            raise OSError(socket.EAI_NONAME, f"{host} has no addresses")
        for ip in addresses:
            if is_forbidden(ip, self._allow):
                raise UnsafeUrl(f"{host} resolves to {ip}, a non-public address")
        answers: list[ResolveResult] = []
        for ip in addresses:
            ip_family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, ip_family):
                answers.append(
                    {
                        "hostname": host,
                        "host": str(ip),
                        "port": port,
                        "family": ip_family,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    }
                )
        if not answers:
            raise OSError(socket.EAI_NONAME, f"{host} has no {family.name} address")
        return answers

    async def close(self) -> None:
        """Nothing of its own to release."""


class GuardedConnector(aiohttp.TCPConnector):
    """A connection pool that reaches only public addresses, plus ``allow``.

    Names go through ``CheckingResolver`` (never cached); an IP-literal host, which
    aiohttp does not resolve, is judged here before every connection.
    """

    def __init__(
        self,
        allow: Sequence[IPNetwork] = (),
        *,
        resolver: Resolver = system_resolver,
        **kwargs: Any,
    ) -> None:
        self._allow = tuple(allow)
        # host -> why it is refused (None: allowed); a literal's verdict never changes,
        # and judging one costs more than the rest of finding a pooled connection
        self._verdicts: dict[str, str | None] = {}
        super().__init__(
            resolver=CheckingResolver(self._allow, resolver), use_dns_cache=False, **kwargs
        )

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's interface
    ) -> aiohttp.connector.Connection:
        self.check(req.url.scheme, req.url.raw_host or "")
        if req.proxy is not None:
            raise UnsafeUrl("the guarded client does not go through proxies")
        return await super().connect(req, traces, timeout)

    def check(self, scheme: str, host: str) -> None:
        """Raise ``UnsafeUrl`` for a scheme other than http(s) or a forbidden literal."""
        if scheme not in ALLOWED_SCHEMES:
            raise UnsafeUrl(f"scheme {scheme!r} is not allowed")
        try:
            refused = self._verdicts[host]
        except KeyError:
            refused = self._judge(host)
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[host] = refused
        if refused is not None:
            raise UnsafeUrl(refused)

    def _judge(self, host: str) -> str | None:
        try:
            ip = literal_address(host)
        except UnsafeUrl as exc:
            return exc.reason
        if ip is not None and is_forbidden(ip, self._allow):
            where = f"{ip} is" if host == str(ip) else f"{host} is {ip},"
            return f"{where} a non-public address"
        return None


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds, connect=min(seconds, CONNECT_TIMEOUT))


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against certifi's roots, as httpx did, so a host without
    a system CA bundle still verifies."""
    return ssl.create_default_context(cafile=certifi.where())


@contextlib.asynccontextmanager
async def guarded_client(
    allow: Sequence[IPNetwork],
    *,
    timeout: float,  # noqa: ASYNC109 - each request's, not this call's
    max_connections: int = MAX_CONNECTIONS,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
    socket_factory: SocketFactory | None = None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """The session for user-supplied URLs: only public addresses, plus ``allow``.

    One host gets at most half the connections, so a slow receiver cannot hold them
    all. ``resolver``, ``ssl_context`` and ``socket_factory`` are for tests.
    """
    connector = GuardedConnector(
        allow,
        resolver=resolver,
        limit=max_connections,
        limit_per_host=max(1, max_connections // 2),
        keepalive_timeout=KEEPALIVE_SECONDS,
        ssl=ssl_context or _tls_context(),
        socket_factory=socket_factory,
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=_timeout(timeout),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        yield session


@contextlib.asynccontextmanager
async def trusted_client(
    *,
    timeout: float,  # noqa: ASYNC109 - each request's, not this call's
) -> AsyncIterator[aiohttp.ClientSession]:
    """The session for URLs the operator configured (Telegram API, SendGrid): no
    guard, and proxies from the environment apply."""
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS, ssl=_tls_context()
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=_timeout(timeout),
        trust_env=True,
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        yield session
