"""The bus: one supervised broker connection per service.

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
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from shared.errors import BusUnavailable, Defer, Ignore, InvalidEvent, Permanent, Retry
from shared.events import CONTENT_TYPE, Event, parse_event
from shared.metrics import ServiceMetrics

from . import _headers as h
from . import _pipeline
from ._acks import Acks
from ._backoff import retry_step
from ._received import Received
from ._topology import (
    QueueNames,
    declare_exchange,
    declare_work_queue,
    exchange_name,
    topic_matches,
)
from ._versions import check_versions
from .catalog import WorkQueue

log = structlog.get_logger("herald.bus")

Handler = Callable[[Event[Any]], Awaitable[None]]

_AMQP_ERRORS: tuple[type[Exception], ...] = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    RuntimeError,  # aiormq raises it for writes on a closing transport
)
_AMQP_OR_TIMEOUT: tuple[type[Exception], ...] = (*_AMQP_ERRORS, TimeoutError)
_UNCONFIRMED: tuple[type[Exception], ...] = (*_AMQP_ERRORS, aio_pika.exceptions.DeliveryError)


# AMQP priorities of Herald's four notification priorities; queues that honour them
# are declared with ``x-max-priority`` = MAX_PRIORITY. A message without one is 0.
PRIORITY_LEVELS = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
MAX_PRIORITY = max(PRIORITY_LEVELS.values())


@dataclass
class Subscription:
    names: QueueNames
    handlers: dict[str, Handler]
    prefetch: int
    retry_delays: tuple[float, ...]
    # where ``Defer`` sends a message: the first step at least as long as asked
    defer_steps: tuple[float, ...]
    max_priority: int | None
    queue: AbstractQueue | None = field(default=None, repr=False)
    consumer_tag: str | None = None
    # the consumer channel of the current connection (aiormq's, under aio-pika's)
    consumer_channel: aiormq.abc.AbstractChannel | None = field(default=None, repr=False)
    # acks written together, on that channel
    acks: Acks | None = field(default=None, repr=False)

    @property
    def delays(self) -> list[float]:
        """Every delay queue of this work queue (retry and defer steps share them)."""
        return sorted(set(self.retry_delays) | set(self.defer_steps))

    def handler_for(self, event_type: str) -> Handler | None:
        handler = self.handlers.get(event_type)
        if handler is not None:
            return handler
        return next(
            (fn for key, fn in self.handlers.items() if topic_matches(key, event_type)), None
        )


# What a listener gets: a parsed event, no ack, no retry (see ``Bus.listen``).
Listener = Callable[[Event[Any]], Awaitable[None]]


@dataclass
class Listening:
    bindings: tuple[str, ...]
    callback: Listener
    max_length: int


class Bus:
    def __init__(
        self,
        *,
        amqp_url: str,
        namespace: str,
        service: str,
        metrics: ServiceMetrics,
        retry_delays: Sequence[float] = (1.0, 5.0, 30.0, 120.0, 600.0),
        prefetch: int = 32,
        publish_timeout: float = 10.0,
        event_time_allowance: float = 60.0,
    ) -> None:
        self._url = amqp_url
        self.namespace = namespace
        self.service = service
        self.metrics = metrics
        self.retry_delays = tuple(retry_delays)
        self.prefetch = prefetch
        self.publish_timeout = publish_timeout
        # how far ahead of our clock an event's time may be before it is clamped
        self.event_time_allowance = timedelta(seconds=event_time_allowance)
        self._subscriptions: list[Subscription] = []
        self._listeners: list[Listening] = []
        self._connected = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._connection: AbstractConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._accepting = True

    # -- public surface -------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def exchange(self) -> str:
        return exchange_name(self.namespace)

    def subscribe(
        self,
        queue: WorkQueue | str,
        handlers: Mapping[str, Handler],
        *,
        prefetch: int | None = None,
        retry_delays: Sequence[float] | None = None,
        defer_steps: Sequence[float] = (),
        priorities: bool = False,
    ) -> QueueNames:
        """Bind a work queue ``<ns>.<service>.<concern>`` to the handlers' event types.

        ``queue`` is a catalog entry (whose bindings the handlers must cover exactly)
        or a bare concern name. Must be called before ``start``. A message whose type
        no handler takes is parked: the queue is bound to exactly these types, so it
        means a mistake upstream.

        ``retry_delays`` overrides the bus-wide back-off for this queue; ``defer_steps``
        are the waits a handler's ``Defer`` can pick from; ``priorities`` makes the
        work queue a priority queue (messages carry ``PRIORITY_LEVELS``).
        """
        if self._supervisor is not None:
            raise RuntimeError("subscribe before start")
        if isinstance(queue, WorkQueue):
            if queue.service != self.service or set(queue.bindings) != set(handlers):
                raise ValueError(f"handlers {sorted(handlers)} do not match catalog entry {queue}")
            concern = queue.concern
        else:
            concern = queue
        names = QueueNames.of(self.namespace, self.service, concern)
        self._subscriptions.append(
            Subscription(
                names,
                dict(handlers),
                prefetch or self.prefetch,
                tuple(retry_delays or self.retry_delays),
                tuple(sorted(defer_steps)),
                MAX_PRIORITY if priorities else None,
            )
        )
        return names

    def listen(
        self, bindings: Sequence[str], callback: Listener, *, max_length: int = 10_000
    ) -> None:
        """Hear every event of ``bindings`` published while connected, on a queue of
        this process's own (exclusive, deleted with its connection, re-made on each
        reconnect). For live views, not work: nothing is acked, retried or parked,
        and what is published while disconnected is never heard. A slow listener
        loses the oldest events beyond ``max_length``. Call before ``start``."""
        if self._supervisor is not None:
            raise RuntimeError("listen before start")
        self._listeners.append(Listening(tuple(bindings), callback, max_length))

    def received(self, event: Event[Any]) -> Event[Any]:
        """``event`` as Herald takes it in: its time no later than now plus the
        allowed clock skew (``Event.clamped``). Applied to every delivery, retries
        included, and by the gateway before it publishes, so no handler stores or
        compares a time that a producer's clock made up."""
        return event.clamped(datetime.now(UTC) + self.event_time_allowance)

    @property
    def connection(self) -> AbstractConnection:
        """The live broker connection, for inspection (queue depths, parked
        messages) on channels of the caller's own; ``BusUnavailable`` if there is none."""
        if self._connection is None or not self._connected.is_set():
            raise BusUnavailable("not connected to the broker")
        return self._connection

    @property
    def queues(self) -> list[str]:
        """Every queue this bus declares (for clean-up and for the docs)."""
        return [n for s in self._subscriptions for n in s.names.all(s.delays)]

    @property
    def holding_queues(self) -> list[str]:
        """The queues where this bus's messages wait rather than get handled: each
        work queue's delay queues and its parking queue (what erasure sweeps)."""
        return [
            name
            for s in self._subscriptions
            for name in (*(s.names.retry(d) for d in s.delays), s.names.parked)
        ]

    async def start(self, *, wait: float | None = None) -> None:
        """Start the supervisor; with ``wait``, block until connected (or raise).
        Refuses (``UntestedLibrary``) on AMQP libraries of untested versions."""
        check_versions()
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"bus:{self.service}")
        if wait is not None:
            try:
                await asyncio.wait_for(self._connected.wait(), wait)
            except TimeoutError as exc:
                raise BusUnavailable(f"no broker connection within {wait}s") from exc

    async def publish(self, event: Event[Any], *, priority: int | None = None) -> None:
        """Publish to the events exchange; returns once the broker confirmed it.

        A payload with a ``priority`` field travels with the matching AMQP priority
        unless ``priority`` says otherwise, so priority queues serve it first.
        """
        message = self._message(event, priority)
        await self._publish(event.type, message, to_events=True, label=event.type)

    async def publish_many(self, events: Iterable[Event[Any]]) -> None:
        """Publish ``events`` to the events exchange; returns once the broker has
        confirmed every one of them.

        The publishes are pipelined: all are written before any confirm is awaited,
        so a batch costs about one round trip rather than one each (``publish`` in a
        loop, or gathered, makes each wait for the channel in turn). ``events`` may
        be a generator: it is read as the batch is written, so the first events are
        on their way while the last are still being built. Those left unconfirmed
        by a lost connection are published again, as ``publish`` does, until
        ``publish_timeout``; then ``BusUnavailable``. Priorities come from the
        payloads, as with ``publish``.
        """
        unread = iter(events)
        first = next(unread, None)
        if first is None:
            return
        read: list[Event[Any]] = [first]

        def every_event() -> list[Event[Any]]:
            read.extend(unread)  # what the first pass did not get to
            return read[:]

        # the first pass reads the events as it writes them; a pass after it
        # republishes what is left unconfirmed, a list by then
        pending: Iterable[Event[Any]] = _recording(first, unread, read)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        last_error = "not connected"
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    if not self._connected.is_set():
                        await self._connected.wait()
                    pending, last_error = await self._publish_batch(pending)
            except TimeoutError:
                last_error = "timed out waiting for confirms"
                pending = pending if isinstance(pending, list) else every_event()
                break
            except _UNCONFIRMED as exc:
                last_error = str(exc) or type(exc).__name__
                pending = pending if isinstance(pending, list) else every_event()
            if not pending:
                break
            await asyncio.sleep(min(0.1, max(deadline - loop.time(), 0)))
        if not isinstance(pending, list):  # no pass ran
            pending = every_event()
        failed = Counter(e.type for e in pending)
        for label, count in (Counter(e.type for e in read) - failed).items():
            self.metrics.child(self.metrics.published, self.service, label, "confirmed").inc(count)
        if pending:
            for label, count in failed.items():
                self.metrics.child(self.metrics.published, self.service, label, "failed").inc(count)
            raise BusUnavailable(
                f"{len(pending)} of {len(read)} publishes not confirmed in "
                f"{self.publish_timeout}s: {last_error}"
            )

    async def _publish_batch(self, events: Iterable[Event[Any]]) -> tuple[list[Event[Any]], str]:
        """One pass of ``publish_many``: the events still unconfirmed after it, and why."""
        channel, exchange = self._publish_channel, self._exchange
        if channel is None or exchange is None:
            raise aio_pika.exceptions.ChannelInvalidStateError("reconnecting")
        underlay = await channel.get_underlay_channel()
        sent: list[Event[Any]] = []

        def messages() -> Iterator[_pipeline.Outgoing]:
            # serialised as they are written: the first go out while the rest are built
            for e in events:
                sent.append(e)
                yield e.type, self._properties(e, None), e.to_json()

        if _pipeline.supports(underlay):
            outcomes: list[Any] = await asyncio.gather(
                *await _pipeline.write_batch(underlay, exchange.name, messages()),
                return_exceptions=True,
            )
        else:  # one by one, as publish does, but without waiting for each in turn
            outcomes = await asyncio.gather(
                *(
                    underlay.basic_publish(
                        body, exchange=exchange.name, routing_key=key, properties=properties
                    )
                    for key, properties, body in messages()
                ),
                return_exceptions=True,
            )
        left, why = [], ""
        for event, outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, _UNCONFIRMED):
                left.append(event)
                why = str(outcome) or type(outcome).__name__
            elif isinstance(outcome, BaseException):
                raise outcome
        return left, why

    async def publish_later(
        self, queue: WorkQueue, event: Event[Any], *, after: float, attempts: int
    ) -> float:
        """Put ``event`` straight into one of this service's work queues, ``after``
        seconds from now, as if its handler had run ``attempts`` times: what a
        handler's ``Retry``/``Defer`` does to a message, for work that started
        without one. The wait is the queue's first delay step at least ``after``
        long (its longest if none is); returns it."""
        names = queue.names(self.namespace)
        sub = next((s for s in self._subscriptions if s.names == names), None)
        if sub is None:
            raise ValueError(f"{names.work} is not subscribed on this bus")
        delays = sub.delays
        delay = next((d for d in delays if d >= after), delays[-1])
        message = self._message(event, None, {h.ATTEMPT: attempts})
        await self.send_to_queue(names.retry(delay), message, label=event.type)
        return delay

    def _properties(
        self, event: Event[Any], priority: int | None, headers: dict[str, Any] | None = None
    ) -> spec.Basic.Properties:
        """What ``_message(...).properties`` would be, without the ``aio_pika.Message``
        (``publish_many`` builds hundreds at once)."""
        if priority is None:
            priority = PRIORITY_LEVELS.get(str(getattr(event.data, "priority", "")))
        return spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            headers=headers or {},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
            priority=priority or 0,
            correlation_id=event.correlation_id,
            message_id=event.id,
            timestamp=event.time,
            message_type=event.type,
            app_id=f"herald-{self.service}",
        )

    def _message(
        self, event: Event[Any], priority: int | None, headers: dict[str, Any] | None = None
    ) -> aio_pika.Message:
        if priority is None:
            priority = PRIORITY_LEVELS.get(str(getattr(event.data, "priority", "")))
        return aio_pika.Message(
            body=event.to_json(),
            headers=headers,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            correlation_id=event.correlation_id,
            type=event.type,
            timestamp=event.time,
            app_id=f"herald-{self.service}",
            priority=priority,
        )

    async def send_to_queue(self, queue: str, message: aio_pika.Message, *, label: str) -> None:
        """Publish straight to one queue through the default exchange, with confirms."""
        await self._publish(queue, message, to_events=False, label=label)

    async def stop(self, drain_timeout: float = 20.0) -> None:
        """Stop consuming, let in-flight messages finish, then close.

        Whatever is still running after ``drain_timeout`` is cancelled without an
        ack, so the broker hands it to another consumer: nothing is lost.
        """
        self._accepting = False
        await self._cancel_consumers()
        try:
            if self._in_flight:
                await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("drain_timeout", in_flight=len(self._in_flight))
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._stop_requested.set()
        if self._supervisor is not None:
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None

    # -- connection supervision ---------------------------------------------

    async def _supervise(self) -> None:
        backoff = 0.2
        ever_connected = False
        while not self._stop_requested.is_set():
            lost = asyncio.Event()
            connection: AbstractConnection | None = None
            try:
                connection = await aio_pika.connect(
                    self._url,
                    timeout=10,
                    client_properties={"connection_name": f"{self.namespace}.{self.service}"},
                )
                connection.close_callbacks.add(_setter(lost))
                await self._open(connection, lost)
            except _AMQP_OR_TIMEOUT as exc:
                log.warning(
                    "bus_connect_failed", error=str(exc) or type(exc).__name__, retry_in=backoff
                )
                await self._close_quietly(connection)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if ever_connected:
                self.metrics.child(self.metrics.reconnects, self.service).inc()
            ever_connected = True
            backoff = 0.2
            self._connection = connection
            self._connected.set()
            self.metrics.child(self.metrics.bus_connected, self.service).set(1)
            log.info("bus_connected", queues=[s.names.work for s in self._subscriptions])
            await _first(lost.wait(), self._stop_requested.wait())
            self._connected.clear()
            self.metrics.child(self.metrics.bus_connected, self.service).set(0)
            self._publish_channel = self._exchange = None
            for sub in self._subscriptions:
                sub.queue, sub.consumer_tag, sub.acks = None, None, None
                sub.consumer_channel = None
            if not self._stop_requested.is_set():
                log.warning("bus_connection_lost", in_flight=len(self._in_flight))
            await self._close_quietly(connection)
            self._connection = None

    async def _open(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        def on_channel_closed(*_: object) -> None:
            # A channel the broker closed (e.g. a stale delivery tag) takes the whole
            # connection down with it, so every part is rebuilt consistently.
            lost.set()

        channel = await connection.channel(publisher_confirms=True)
        channel.close_callbacks.add(on_channel_closed)
        self._exchange = await declare_exchange(channel, self.namespace)
        self._publish_channel = channel
        for sub in self._subscriptions:
            consumer_channel = await connection.channel()
            consumer_channel.close_callbacks.add(on_channel_closed)
            await consumer_channel.set_qos(prefetch_count=sub.prefetch)
            underlay = await consumer_channel.get_underlay_channel()
            sub.consumer_channel, sub.acks = underlay, Acks(underlay)
            exchange = await declare_exchange(consumer_channel, self.namespace)
            sub.queue = await declare_work_queue(
                consumer_channel,
                exchange,
                sub.names,
                _bindings(sub),
                sub.delays,
                max_priority=sub.max_priority,
            )
            if self._accepting:
                consuming = await underlay.basic_consume(
                    sub.queue.name, _bind(self._on_message, sub)
                )
                sub.consumer_tag = consuming.consumer_tag
        for listening in self._listeners:
            await self._open_listener(connection, listening, on_channel_closed)

    async def _open_listener(
        self,
        connection: AbstractConnection,
        listening: Listening,
        on_channel_closed: Callable[..., None],
    ) -> None:
        channel = await connection.channel()
        channel.close_callbacks.add(on_channel_closed)
        exchange = await declare_exchange(channel, self.namespace)
        queue = await channel.declare_queue(
            # named for the operator who sees it in a listing; unique per connection
            f"{self.namespace}.{self.service}.live.{uuid.uuid4().hex[:12]}",
            exclusive=True,
            auto_delete=True,
            arguments={"x-max-length": listening.max_length, "x-overflow": "drop-head"},
        )
        for key in listening.bindings:
            await queue.bind(exchange, routing_key=key)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                event = self.received(parse_event(message.body))
            except InvalidEvent as exc:
                log.info("listener_skipped_invalid_event", error=exc.reason)
                return
            try:
                await listening.callback(event)
            except Exception as exc:
                log.warning("listener_failed", error=f"{type(exc).__name__}: {exc}")

        await queue.consume(on_message, no_ack=True, exclusive=True)

    async def _cancel_consumers(self) -> None:
        for sub in self._subscriptions:
            if sub.consumer_channel is not None and sub.consumer_tag is not None:
                # If the connection is gone the broker has stopped delivering anyway.
                with contextlib.suppress(*_AMQP_ERRORS):
                    await sub.consumer_channel.basic_cancel(sub.consumer_tag)
                sub.consumer_tag = None

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)

    @staticmethod
    async def _close_quietly(connection: AbstractConnection | None) -> None:
        if connection is None:
            return
        with contextlib.suppress(*_AMQP_OR_TIMEOUT):
            await asyncio.wait_for(connection.close(), 5)

    # -- publishing -----------------------------------------------------------

    async def _publish(
        self, routing_key: str, message: aio_pika.Message, *, to_events: bool, label: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        last_error = "not connected"
        while (remaining := deadline - loop.time()) > 0:
            try:
                # asyncio.timeout rather than wait_for: wait_for wraps the publish in a
                # task of its own, a cost paid on every message.
                async with asyncio.timeout(remaining):
                    if not self._connected.is_set():
                        await self._connected.wait()
                    channel, exchange = self._publish_channel, self._exchange
                    if channel is None or exchange is None:
                        raise aio_pika.exceptions.ChannelInvalidStateError("reconnecting")
                    target = exchange if to_events else channel.default_exchange
                    # an event nobody subscribes to is normal on a topic exchange:
                    # not mandatory, so the broker drops it instead of returning it
                    # (a returned message costs both sides and told us nothing)
                    await target.publish(message, routing_key=routing_key, mandatory=not to_events)
            except TimeoutError:
                last_error = "timed out waiting for a confirm"
                break
            except _UNCONFIRMED as exc:
                # Unconfirmed: publish again once reconnected. A duplicate is possible
                # if the broker took it before the loss; it has the same id and
                # idempotent consumers absorb it.
                last_error = str(exc) or type(exc).__name__
                await asyncio.sleep(min(0.1, max(remaining, 0)))
                continue
            self.metrics.child(self.metrics.published, self.service, label, "confirmed").inc()
            return
        self.metrics.child(self.metrics.published, self.service, label, "failed").inc()
        raise BusUnavailable(
            f"publish of {label} not confirmed in {self.publish_timeout}s: {last_error}"
        )

    # -- consuming ------------------------------------------------------------

    async def _on_message(self, sub: Subscription, message: Received) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        self._idle.clear()
        self.metrics.child(self.metrics.in_flight, self.service).inc()
        try:
            await self._process(sub, message)
        finally:
            self.metrics.child(self.metrics.in_flight, self.service).dec()
            self._in_flight.discard(task)
            if not self._in_flight:
                self._idle.set()

    async def _process(self, sub: Subscription, message: Received) -> None:
        headers = message.headers or {}
        attempt = _int(headers.get(h.ATTEMPT)) + 1
        queue = sub.names.work
        try:
            event = self.received(parse_event(message.body))
        except InvalidEvent as exc:
            await self._park(sub, message, "invalid", exc.reason, attempt, "unknown")
            return
        handler = sub.handler_for(event.type)
        if handler is None:
            await self._park(
                sub, message, "unrouted", f"no handler for {event.type}", attempt, event.type
            )
            return
        # Each delivery runs in a task of its own (aiormq creates one per message),
        # so binding into the task's context needs no unbinding afterwards.
        structlog.contextvars.bind_contextvars(
            event_id=event.id,
            correlation_id=event.correlation_id,
            type=event.type,
            queue=queue,
            attempt=attempt,
        )
        started = time.perf_counter()
        try:
            await handler(event)
        except Defer as exc:
            await self._defer(sub, message, exc, attempt - 1, event.type)
        except Ignore as exc:
            log.info("event_ignored", reason=exc.reason)
            if await _ack(sub, message):
                self.metrics.child(
                    self.metrics.consumed, self.service, queue, event.type, "ignored"
                ).inc()
        except Permanent as exc:
            log.warning("handler_failed_permanently", error=exc.reason)
            await self._park(sub, message, "permanent", exc.reason, attempt, event.type)
        except Retry as exc:
            await self._retry_or_park(sub, message, exc.reason, exc.after, attempt, event.type)
        except Exception as exc:
            log.warning("handler_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)
            await self._retry_or_park(
                sub, message, f"{type(exc).__name__}: {exc}", None, attempt, event.type
            )
        else:
            if await _ack(sub, message):
                self.metrics.child(
                    self.metrics.consumed, self.service, queue, event.type, "ok"
                ).inc()
        finally:
            self.metrics.child(self.metrics.handler_seconds, self.service, event.type).observe(
                time.perf_counter() - started
            )

    async def _retry_or_park(
        self,
        sub: Subscription,
        message: Received,
        error: str,
        after: float | None,
        attempt: int,
        event_type: str,
    ) -> None:
        step = retry_step(attempt, sub.retry_delays, after)
        if step is None:
            await self._park(sub, message, "exhausted", error, attempt, event_type)
            return
        delay = sub.retry_delays[step]
        copy = _copy(message, {h.ATTEMPT: attempt, h.LAST_ERROR: h.clip(error)})
        try:
            await self.send_to_queue(sub.names.retry(delay), copy, label=event_type)
        except BusUnavailable:
            return  # not acked: the broker redelivers it once we are back
        log.info("retry_scheduled", step=step, delay=delay, error=error)
        if await _ack(sub, message):
            self.metrics.child(self.metrics.retries, self.service, sub.names.work).inc()
            self.metrics.child(
                self.metrics.consumed, self.service, sub.names.work, event_type, "retried"
            ).inc()

    async def _defer(
        self,
        sub: Subscription,
        message: Received,
        defer: Defer,
        attempts_so_far: int,
        event_type: str,
    ) -> None:
        steps = sub.defer_steps or sub.retry_delays
        # the longest step when none is long enough: the handler defers again on return
        delay = next((d for d in steps if d >= defer.after), steps[-1])
        copy = _copy(message, {h.ATTEMPT: attempts_so_far})
        try:
            await self.send_to_queue(sub.names.retry(delay), copy, label=event_type)
        except BusUnavailable:
            return
        log.debug("deferred", delay=delay, wanted=defer.after, reason=defer.reason)
        if await _ack(sub, message):
            self.metrics.child(
                self.metrics.consumed, self.service, sub.names.work, event_type, "deferred"
            ).inc()

    async def _park(
        self,
        sub: Subscription,
        message: Received,
        reason: str,
        error: str,
        attempt: int,
        event_type: str,
    ) -> None:
        copy = _copy(
            message,
            {
                h.ATTEMPT: attempt,
                h.PARKED_REASON: reason,
                h.LAST_ERROR: h.clip(error),
                h.PARKED_AT: datetime.now(UTC).isoformat(),
                h.ORIGIN_QUEUE: sub.names.work,
                h.ORIGIN_ROUTING_KEY: message.routing_key or "",
            },
        )
        try:
            await self.send_to_queue(sub.names.parked, copy, label=event_type)
        except BusUnavailable:
            return
        log.warning("message_parked", reason=reason, error=error, parked_queue=sub.names.parked)
        if await _ack(sub, message):
            self.metrics.child(self.metrics.parked, self.service, sub.names.work, reason).inc()
            self.metrics.child(
                self.metrics.consumed, self.service, sub.names.work, event_type, "parked"
            ).inc()


def _setter(event: asyncio.Event) -> Callable[..., None]:
    def set_event(*_: object) -> None:
        event.set()

    return set_event


def _bindings(sub: Subscription) -> list[str]:
    return list(sub.handlers)


def _bind(
    fn: Callable[[Subscription, Received], Awaitable[None]], sub: Subscription
) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
    # aiormq runs this in a task of its own for each delivery
    async def on_message(delivered: DeliveredMessage) -> None:
        await fn(sub, Received(delivered))

    return on_message


async def _ack(sub: Subscription, message: Received) -> bool:
    try:
        if sub.acks is not None:
            await sub.acks.ack(message)
        else:
            await message.ack()
    except _AMQP_ERRORS:
        # The channel died under us: the broker will redeliver, and the handler's
        # idempotency absorbs the repeat. Never ack on a channel that replaced it.
        log.info("ack_lost_to_reconnect")
        return False
    return True


def _copy(message: Received, extra_headers: dict[str, Any]) -> aio_pika.Message:
    return h.copy_message(message, {**(message.headers or {}), **extra_headers})


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return 0


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _recording(
    first: Event[Any], rest: Iterator[Event[Any]], read: list[Event[Any]]
) -> Iterator[Event[Any]]:
    """``first``, then ``rest``, each of those appended to ``read`` as it is taken."""
    yield first
    for event in rest:
        read.append(event)
        yield event
