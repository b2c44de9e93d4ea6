"""One supervised broker connection.

Why not aio-pika's ``connect_robust``: after a broker restart its channels can come
back without their consumers, and a message received before a reconnect can be
acked on the channel that replaced its own. Here each connection is a plain one;
when it is lost, everything built on it (channels, consumers, in-flight acks) is
dropped and rebuilt from scratch on the next connection: topology re-declared,
consumers re-registered, unacked messages redelivered by the broker. Handlers are
idempotent, so a redelivery costs a little work and never a second effect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection

from shared.errors import BusUnavailable
from shared.metrics import ServiceMetrics

from ._publishing import BROKER_ERRORS

__all__ = ["Supervisor", "broker_connection"]

log = structlog.get_logger("herald.bus")

_BROKER_OR_TIMEOUT: tuple[type[Exception], ...] = (*BROKER_ERRORS, TimeoutError)

# What to build on a new connection; calling ``lost`` tears the connection down
# (a channel the broker closed is reason enough: every part is rebuilt together).
Opener = Callable[[AbstractConnection, Callable[..., None]], Awaitable[None]]


class Supervisor:
    def __init__(
        self,
        *,
        url: str,
        name: str,
        service: str,
        metrics: ServiceMetrics,
        on_open: Opener,
        on_lost: Callable[[], None],
    ) -> None:
        self._url = url
        self._name = name
        self.service = service
        self.metrics = metrics
        self._on_open = on_open
        self._on_lost = on_lost
        self.connected = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._connection: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def connection(self) -> AbstractConnection:
        if self._connection is None or not self.connected.is_set():
            raise BusUnavailable("not connected to the broker")
        return self._connection

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"bus:{self.service}")

    async def wait_connected(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), seconds)
        except TimeoutError as exc:
            raise BusUnavailable(f"no broker connection within {seconds}s") from exc

    async def stop(self) -> None:
        self._stop_requested.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _supervise(self) -> None:
        backoff = 0.2
        ever_connected = False
        connected_gauge = self.metrics.child(self.metrics.bus_connected, self.service)
        while not self._stop_requested.is_set():
            lost = asyncio.Event()
            connection: AbstractConnection | None = None
            try:
                connection = await aio_pika.connect(
                    self._url, timeout=10, client_properties={"connection_name": self._name}
                )
                connection.close_callbacks.add(_setter(lost))
                await self._on_open(connection, _setter(lost))
            except _BROKER_OR_TIMEOUT as exc:
                log.warning(
                    "bus_connect_failed", error=str(exc) or type(exc).__name__, retry_in=backoff
                )
                self._on_lost()
                await _close_quietly(connection)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if ever_connected:
                self.metrics.child(self.metrics.reconnects, self.service).inc()
            ever_connected = True
            backoff = 0.2
            self._connection = connection
            self.connected.set()
            connected_gauge.set(1)
            log.info("bus_connected", connection=self._name)
            await _first(lost.wait(), self._stop_requested.wait())
            self.connected.clear()
            connected_gauge.set(0)
            self._on_lost()
            if not self._stop_requested.is_set():
                log.warning("bus_connection_lost", connection=self._name)
            await _close_quietly(connection)
            self._connection = None

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)


@contextlib.asynccontextmanager
async def broker_connection(url: str) -> AsyncIterator[AbstractConnection]:
    """A plain connection for one piece of work (a CLI command, a retention run),
    closed after it. Failing to connect, or losing the connection meanwhile, raises
    ``BusUnavailable``."""
    try:
        connection = await aio_pika.connect(url)
    except _BROKER_OR_TIMEOUT as exc:
        raise BusUnavailable(f"cannot connect to the broker: {exc}") from exc
    try:
        yield connection
    except BROKER_ERRORS as exc:
        raise BusUnavailable(f"broker connection lost: {exc}") from exc
    finally:
        await _close_quietly(connection)


def _setter(event: asyncio.Event) -> Callable[..., None]:
    def set_event(*_: object) -> None:
        event.set()

    return set_event


async def _close_quietly(connection: AbstractConnection | None) -> None:
    if connection is None:
        return
    with contextlib.suppress(*_BROKER_OR_TIMEOUT):
        await asyncio.wait_for(connection.close(), 5)


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
