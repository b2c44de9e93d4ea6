"""The one consumer wrapper: parse, hand to the handler, then ack, retry, defer or
park (DESIGN §2).

A retry, a deferral or a park is a copy of the message published with confirms to
a delay queue or the parking queue *before* the original is acked, so a crash in
between leaves a duplicate, never a loss. An ack goes out on the channel the message
came on (with others due at the same moment, ``_fastpath.Acks``); when that channel
is gone the ack is dropped (the broker redelivers the message, and the handler's
idempotency absorbs the repeat), never sent on the channel that replaced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import aiormq
import structlog
from aio_pika.abc import AbstractConnection
from aiormq.abc import DeliveredMessage

from shared.errors import (
    BusUnavailable,
    Defer,
    Ignore,
    InvalidEvent,
    Permanent,
    Retry,
    Unpublishable,
)
from shared.events import Event, parse_event
from shared.metrics import ServiceMetrics

from . import _headers as h
from ._backoff import retry_step
from ._fastpath import Acks
from ._outgoing import Outgoing
from ._publishing import BROKER_ERRORS
from ._received import Received
from ._subscription import Subscription
from ._topology import declare_exchange, declare_work_queue

__all__ = ["Consumer"]

log = structlog.get_logger("herald.bus")

Send = Callable[[Outgoing], Awaitable[None]]


class Consumer:
    """The subscriptions of one bus, the messages in hand, and what becomes of each."""

    def __init__(
        self,
        *,
        service: str,
        metrics: ServiceMetrics,
        send: Send,
        received: Callable[[Event[Any]], Event[Any]],
    ) -> None:
        self.service = service
        self.metrics = metrics
        self._send = send
        self._received = received
        self.subscriptions: list[Subscription] = []
        self.accepting = True
        self.in_flight: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def open(
        self, connection: AbstractConnection, namespace: str, on_closed: Callable[..., None]
    ) -> None:
        """Declare every subscription's queues on ``connection`` and consume them,
        each on a channel of its own with its own prefetch."""
        for sub in self.subscriptions:
            channel = await connection.channel()
            channel.close_callbacks.add(on_closed)
            await channel.set_qos(prefetch_count=sub.prefetch)
            underlay = await channel.get_underlay_channel()
            if not isinstance(underlay, aiormq.Channel):  # what aio-pika gives, always
                raise TypeError(f"not an aiormq channel: {underlay!r}")
            sub.channel, sub.acks = underlay, Acks(underlay)
            exchange = await declare_exchange(channel, namespace)
            queue = await declare_work_queue(
                channel,
                exchange,
                sub.names,
                list(sub.handlers),
                sub.delays,
                max_priority=sub.max_priority,
            )
            if self.accepting:
                consuming = await sub.channel.basic_consume(queue.name, self._on_message(sub))
                sub.consumer_tag = consuming.consumer_tag

    def drop(self) -> None:
        """Forget the lost connection's channels (their messages come back)."""
        for sub in self.subscriptions:
            sub.consumer_tag, sub.channel, sub.acks = None, None, None

    async def stop(self, drain_timeout: float) -> None:
        """Stop taking messages and let those in hand finish; after ``drain_timeout``
        cancel them unacked, so the broker hands them to another consumer."""
        self.accepting = False
        for sub in self.subscriptions:
            if sub.channel is not None and sub.consumer_tag is not None:
                # If the connection is gone the broker has stopped delivering anyway.
                with contextlib.suppress(*BROKER_ERRORS):
                    await sub.channel.basic_cancel(sub.consumer_tag)
                sub.consumer_tag = None
        try:
            if self.in_flight:
                await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("drain_timeout", in_flight=len(self.in_flight))
            for task in list(self.in_flight):
                task.cancel()
            await asyncio.gather(*self.in_flight, return_exceptions=True)

    def _on_message(
        self, sub: Subscription
    ) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
        # aiormq runs this in a task of its own for each delivery
        async def on_message(delivered: DeliveredMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.in_flight.add(task)
            self._idle.clear()
            self.metrics.child(self.metrics.in_flight, self.service).inc()
            try:
                await self._process(sub, Received(delivered))
            except BusUnavailable:
                pass  # its retry or park was not confirmed: unacked, it comes back
            finally:
                self.metrics.child(self.metrics.in_flight, self.service).dec()
                self.in_flight.discard(task)
                if not self.in_flight:
                    self._idle.set()

        return on_message

    async def _process(self, sub: Subscription, message: Received) -> None:
        attempt = _int(message.headers.get(h.ATTEMPT)) + 1
        queue = sub.names.work
        try:
            event = self._received(parse_event(message.body))
        except InvalidEvent as exc:
            await self._park(sub, message, "invalid", exc.reason, attempt, "unknown")
            return
        handler = sub.handler_for(event.type)
        if handler is None:
            error = f"no handler for {event.type}"
            await self._park(sub, message, "unrouted", error, attempt, event.type)
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
            await self._settle(sub, message, event.type, "ignored")
        except Permanent as exc:
            log.warning("handler_failed_permanently", error=exc.reason)
            await self._park(sub, message, "permanent", exc.reason, attempt, event.type)
        except Retry as exc:
            await self._retry_or_park(sub, message, exc.reason, exc.after, attempt, event.type)
        except Exception as exc:
            log.warning("handler_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
            await self._retry_or_park(sub, message, error, None, attempt, event.type)
        else:
            await self._settle(sub, message, event.type, "ok")
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
        headers = {h.ATTEMPT: attempt, h.LAST_ERROR: h.clip(error)}
        if not await self._moved(message, sub.names.retry(delay), headers, event_type):
            await self._park(sub, message, "permanent", error, attempt, event_type)
            return
        log.info("retry_scheduled", step=step, delay=delay, error=error)
        if await self._settle(sub, message, event_type, "retried"):
            self.metrics.child(self.metrics.retries, self.service, sub.names.work).inc()

    async def _defer(
        self,
        sub: Subscription,
        message: Received,
        defer: Defer,
        attempts_so_far: int,
        event_type: str,
    ) -> None:
        # the longest step when none is long enough: the handler defers again on return
        delay = sub.delay_for(defer.after, sub.defer_steps or sub.retry_delays)
        headers = {h.ATTEMPT: attempts_so_far}
        if not await self._moved(message, sub.names.retry(delay), headers, event_type):
            error = "cannot be deferred with its headers"
            await self._park(sub, message, "permanent", error, attempts_so_far, event_type)
            return
        log.debug("deferred", delay=delay, wanted=defer.after, reason=defer.reason)
        await self._settle(sub, message, event_type, "deferred")

    async def _park(
        self,
        sub: Subscription,
        message: Received,
        reason: str,
        error: str,
        attempt: int,
        event_type: str,
    ) -> None:
        headers = {
            h.ATTEMPT: attempt,
            h.PARKED_REASON: reason,
            h.LAST_ERROR: h.clip(error),
            h.PARKED_AT: datetime.now(UTC).isoformat(),
            h.ORIGIN_QUEUE: sub.names.work,
            h.ORIGIN_ROUTING_KEY: message.routing_key or "",
        }
        # A message whose own headers cannot travel again is parked with ours alone
        # rather than redelivered for ever.
        if not await self._moved(message, sub.names.parked, headers, event_type) and not (
            await self._moved(message, sub.names.parked, headers, event_type, keep=False)
        ):
            log.error("message_not_parkable", reason=reason, error=error)
            return
        log.warning("message_parked", reason=reason, error=error, parked_queue=sub.names.parked)
        if await self._settle(sub, message, event_type, "parked"):
            self.metrics.child(self.metrics.parked, self.service, sub.names.work, reason).inc()

    async def _moved(
        self,
        message: Received,
        queue: str,
        headers: dict[str, Any],
        label: str,
        *,
        keep: bool = True,
    ) -> bool:
        """Whether a copy of ``message`` with ``headers`` added (to its own with
        ``keep``) is now in ``queue``, confirmed; False when the copy cannot be
        encoded. A broker lost meanwhile raises ``BusUnavailable``."""
        copied = {**message.headers, **headers} if keep else headers
        properties = h.copy_properties(message, copied)
        try:
            await self._send(Outgoing(queue, properties, message.body, label, to_queue=True))
        except Unpublishable:  # its headers cannot go on the wire
            return False
        return True

    async def _settle(
        self, sub: Subscription, message: Received, event_type: str, outcome: str
    ) -> bool:
        """Ack ``message`` and count its ``outcome``; False when the ack was lost
        with its channel (the broker redelivers the message)."""
        try:
            await (sub.acks.ack(message) if sub.acks is not None else message.ack())
        except BROKER_ERRORS:
            # Never ack on a channel that replaced the message's own.
            log.info("ack_lost_to_reconnect")
            return False
        self.metrics.child(
            self.metrics.consumed, self.service, sub.names.work, event_type, outcome
        ).inc()
        return True


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return 0
