"""Outbound HTTP that user-supplied URLs cannot point at private addresses.

``UrlGuard.check`` judges a URL by resolving its host before the request; a DNS
rebinding attacker answers that lookup with a public address and the lookup made a
moment later to connect with ``127.0.0.1``. Here the network backend under httpx
resolves the host itself, refuses the connection if any answer is forbidden, and
connects to the very addresses it checked, so there is no second lookup to poison.
TLS is unaffected: httpcore still hands the URL's host name to the TLS layer for SNI
and certificate checks; only the TCP connection is made to the checked address.

    guarded_client(allow, timeout=...)   user-supplied URLs (webhooks, chat webhooks)
    trusted_client(timeout=...)          operator-configured URLs (Telegram API, SendGrid)

A refusal raises ``UnsafeUrl`` through ``httpx.AsyncClient.request``;
``channels._http.call`` turns it into a permanent failure. Proxies from the
environment are ignored by the guarded client, since a proxy would make the
connection on our behalf to whatever the URL names. The backend resolves with
asyncio, so the guarded client runs under asyncio only (not trio).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)

import httpcore
import httpx

from .url_guard import IPAddress, IPNetwork, UnsafeUrl, is_forbidden

__all__ = [
    "GuardedBackend",
    "GuardedTransport",
    "Resolver",
    "guarded_client",
    "system_resolver",
    "trusted_client",
]


# (host, port) -> every address the host has; raises OSError when it has none
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

CONNECT_TIMEOUT = 5.0
KEEPALIVE_CONNECTIONS = 50


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # scoped IPv6 addresses (fe80::1%eth0) keep their scope so the connect works
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, refuse if any address is forbidden, connect to the checked addresses.

    ``backend`` makes the actual connections (httpcore's AnyIO backend by default);
    it is only ever given IP addresses.
    """

    def __init__(
        self,
        allow: Sequence[IPNetwork] = (),
        *,
        resolver: Resolver = system_resolver,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow = tuple(allow)
        self._resolver = resolver
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await self._resolve(host, port, timeout)
        for ip in addresses:
            if is_forbidden(ip, self._allow):
                where = f"{ip} is" if host == str(ip) else f"{host} resolves to {ip},"
                raise UnsafeUrl(f"{where} a non-public address")
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for ip in addresses:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await self._backend.connect_tcp(
                    str(ip), port, remaining, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _resolve never returns an empty list
        raise failure

    async def _resolve(self, host: str, port: int, within: float | None) -> Sequence[IPAddress]:
        with contextlib.suppress(ValueError):
            return [ipaddress.ip_address(host)]
        try:
            async with asyncio.timeout(within):
                addresses = await self._resolver(host, port)
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no addresses")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("unix sockets cannot be reached through the guarded client")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


_HTTPCORE_TO_HTTPX: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
}


@contextlib.contextmanager
def _httpcore_errors_as_httpx() -> Iterator[None]:
    """httpcore's errors as the httpx class callers catch, the most specific one."""
    try:
        yield
    except Exception as exc:
        for cls in type(exc).__mro__:
            mapped = _HTTPCORE_TO_HTTPX.get(cls)
            if mapped is not None:
                raise mapped(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpcore_errors_as_httpx():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpcore connection pool over ``GuardedBackend``, behind httpx's interface."""

    def __init__(
        self,
        allow: Sequence[IPNetwork] = (),
        *,
        resolver: Resolver = system_resolver,
        backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(
            max_connections=200, max_keepalive_connections=KEEPALIVE_CONNECTIONS
        )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow, resolver=resolver, backend=backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise UnsafeUrl(f"scheme {request.url.scheme!r} is not allowed")
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpcore_errors_as_httpx():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


def guarded_client(
    allow: Sequence[IPNetwork], *, timeout: float, max_connections: int = 200
) -> httpx.AsyncClient:
    """The client for user-supplied URLs: only public addresses, plus ``allow``."""
    transport = GuardedTransport(
        allow,
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(KEEPALIVE_CONNECTIONS, max_connections),
        ),
    )
    return httpx.AsyncClient(
        transport=transport, timeout=_timeout(timeout), follow_redirects=False, trust_env=False
    )


def trusted_client(*, timeout: float) -> httpx.AsyncClient:
    """The client for URLs the operator configured (Telegram API, SendGrid): no guard,
    and proxies from the environment apply."""
    return httpx.AsyncClient(timeout=_timeout(timeout), follow_redirects=False)
