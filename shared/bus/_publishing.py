"""Confirmed publishing: one path, for one message or a batch.

Each message goes out through aiormq's own ``Channel.basic_publish`` with
``wait=False`` (it returns once its frames are queued for the socket, then waits for
the broker's confirm), one task per message, and the confirms are gathered. aiormq
numbers the delivery tags and matches each confirm to its message under the
channel's lock; nothing here knows a tag. Tasks take that lock in the order they
were made, so a batch reaches the broker in order, and a batch costs about one round
trip rather than one each.

A publish that the broker did not confirm (connection or channel lost, nack) is
published again, once reconnected, until ``timeout``; the consumers are idempotent,
so a copy the broker took just before the loss costs nothing. A message that cannot
be encoded (pamqp refuses a property, or its header would not fit in one frame) is
never sent: it raises ``Unpublishable`` and leaves the channel as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiormq
from pamqp import commands as spec
from pamqp import frame as amqp_frame
from pamqp.header import ContentHeader

from shared.errors import BusUnavailable, Unpublishable
from shared.events import CONTENT_TYPE, Event
from shared.metrics import ServiceMetrics

__all__ = [
    "BROKER_ERRORS",
    "MAX_PRIORITY",
    "PRIORITY_LEVELS",
    "Outgoing",
    "Publisher",
    "event_message",
]

# what a lost connection or channel raises, through aio-pika or aiormq
BROKER_ERRORS: tuple[type[Exception], ...] = (
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,
    RuntimeError,  # aiormq raises it for writes on a closing transport
)
# a publish the broker did not confirm: worth publishing again once reconnected
# (a confirmation cancelled by its channel closing included)
_UNCONFIRMED: tuple[type[BaseException], ...] = (*BROKER_ERRORS, asyncio.CancelledError)

# tasks made before the first are let run: the broker routes the start of a large
# batch while its end is still being built
_BATCH_STEP = 256

# AMQP priorities of Herald's four notification priorities; queues that honour them
# are declared with ``x-max-priority`` = MAX_PRIORITY. A message without one is 0.
PRIORITY_LEVELS = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
MAX_PRIORITY = max(PRIORITY_LEVELS.values())
_PERSISTENT = 2


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: to the events exchange under ``routing_key``, or, with
    ``to_queue``, straight to the queue of that name (mandatory: the broker says so
    if the queue is missing). ``label`` names it in metrics and errors."""

    routing_key: str
    properties: spec.Basic.Properties
    body: bytes
    label: str
    to_queue: bool = False


def event_message(
    event: Event[Any],
    *,
    app_id: str,
    priority: int | None = None,
    headers: dict[str, Any] | None = None,
    queue: str | None = None,
) -> Outgoing:
    """``event`` as a persistent message, to the events exchange or, with ``queue``,
    straight to that queue. Without ``priority``, a payload's ``priority`` field
    gives the AMQP priority, so priority queues serve it first."""
    if priority is None:
        priority = PRIORITY_LEVELS.get(str(getattr(event.data, "priority", "")))
    properties = spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        headers=headers or {},
        delivery_mode=_PERSISTENT,
        priority=priority or 0,
        correlation_id=event.correlation_id,
        message_id=event.id,
        timestamp=event.time,
        message_type=event.type,
        app_id=app_id,
    )
    if queue is None:
        return Outgoing(event.type, properties, event.to_json(), event.type)
    return Outgoing(queue, properties, event.to_json(), event.type, to_queue=True)


class Publisher:
    def __init__(
        self,
        *,
        service: str,
        metrics: ServiceMetrics,
        timeout: float,
        connected: asyncio.Event,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.timeout = timeout
        self._connected = connected
        self._channel: aiormq.Channel | None = None
        self._exchange = ""

    def attach(self, channel: aiormq.abc.AbstractChannel, exchange: str) -> None:
        """Publish on ``channel`` (with publisher confirms) from now on."""
        if not isinstance(channel, aiormq.Channel):  # what aio-pika gives, always
            raise TypeError(f"not an aiormq channel: {channel!r}")
        self._channel, self._exchange = channel, exchange

    def detach(self) -> None:
        self._channel = None

    async def publish(self, messages: Iterable[Outgoing]) -> None:
        """Publish ``messages``; return once the broker confirmed every one.

        ``messages`` may be a generator: it is read as the batch is written. Raises
        ``BusUnavailable`` when some are still unconfirmed after ``timeout`` (the
        others were confirmed), ``Unpublishable`` for a message that cannot be
        encoded (the others are published)."""
        unread: Iterator[Outgoing]
        if isinstance(messages, Sequence):
            read, unread = list(messages), iter(())
            if not read:
                return
            first_pass: Iterable[Outgoing] = read
        else:
            # a generator is read by the first pass as it writes
            unread = iter(messages)
            first = next(unread, None)
            if first is None:
                return
            read = [first]
            first_pass = itertools.chain(read[:], _recording(unread, read))
        left: list[Outgoing] | None = None  # unconfirmed after the last pass
        refused: list[tuple[Outgoing, BaseException]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        last_error = "not connected"
        while (remaining := deadline - loop.time()) > 0:
            try:
                # asyncio.timeout rather than wait_for: no task of its own per publish
                async with asyncio.timeout(remaining):
                    if not self._connected.is_set():
                        await self._connected.wait()
                    left, last_error = await self._pass(
                        first_pass if left is None else left, refused
                    )
            except TimeoutError:
                last_error = "timed out waiting for confirms"
                break
            except BROKER_ERRORS as exc:
                last_error = str(exc) or type(exc).__name__
            finally:
                if left is None:  # the first pass did not finish: all of it is left
                    read.extend(unread)
                    left = read[:]
            if not left:
                break
            await asyncio.sleep(min(0.1, max(deadline - loop.time(), 0)))
        assert left is not None
        left = [m for m in left if all(m is not r for r, _ in refused)]
        self._count(read, left, refused)
        if refused:
            message, error = refused[0]
            raise Unpublishable(f"{message.label} cannot be published: {error}") from error
        if left:
            raise BusUnavailable(
                f"{len(left)} of {len(read)} publishes not confirmed in "
                f"{self.timeout}s: {last_error}"
            )

    async def _pass(
        self, messages: Iterable[Outgoing], refused: list[tuple[Outgoing, BaseException]]
    ) -> tuple[list[Outgoing], str]:
        """Publish ``messages`` once: those left unconfirmed, and why. Messages that
        cannot be encoded go to ``refused``."""
        channel = self._channel
        if channel is None:
            raise aiormq.exceptions.ChannelInvalidStateError("reconnecting")
        if isinstance(messages, Sequence) and len(messages) == 1:  # no task needed
            sent: list[Outgoing] = list(messages)
            try:
                outcomes: list[Any] = [await self._one(channel, sent[0])]
            except _UNCONFIRMED as exc:
                if isinstance(exc, asyncio.CancelledError) and _cancelling():
                    raise
                outcomes = [exc]
            except (TypeError, ValueError) as exc:
                outcomes = [exc]
        else:
            sent = []
            confirming: list[asyncio.Future[Any]] = []
            try:
                for message in messages:
                    sent.append(message)
                    confirming.append(asyncio.ensure_future(self._one(channel, message)))
                    if len(confirming) % _BATCH_STEP == 0:
                        await asyncio.sleep(0)
                outcomes = await asyncio.gather(*confirming, return_exceptions=True)
            except BaseException:
                for confirmation in confirming:  # aiormq takes back what it did not write
                    confirmation.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.gather(*confirming, return_exceptions=True)
                raise
        left, why = [], ""
        for message, outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, _UNCONFIRMED):
                left.append(message)
                why = str(outcome) or type(outcome).__name__
            elif isinstance(outcome, TypeError | ValueError):  # pamqp's, or ours
                refused.append((message, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
        return left, why

    async def _one(self, channel: aiormq.Channel, message: Outgoing) -> object:
        properties = message.properties
        if properties.headers and _header_size(message) > channel.max_content_size:
            # the broker would close the connection over it, and every retry after
            raise ValueError("its headers do not fit in one frame")
        return await channel.basic_publish(
            message.body,
            exchange="" if message.to_queue else self._exchange,
            routing_key=message.routing_key,
            properties=properties,
            # an event nobody subscribes to is normal on a topic exchange: not
            # mandatory, so the broker drops it instead of returning it (a returned
            # message costs both sides and told us nothing)
            mandatory=message.to_queue,
            wait=False,
        )

    def _count(
        self,
        read: list[Outgoing],
        pending: list[Outgoing],
        refused: list[tuple[Outgoing, BaseException]],
    ) -> None:
        failed = Counter(m.label for m in pending) + Counter(m.label for m, _ in refused)
        child, published = self.metrics.child, self.metrics.published
        for label, count in (Counter(m.label for m in read) - failed).items():
            child(published, self.service, label, "confirmed").inc(count)
        for label, count in failed.items():
            child(published, self.service, label, "failed").inc(count)


def _header_size(message: Outgoing) -> int:
    header = ContentHeader(properties=message.properties, body_size=len(message.body))
    return len(amqp_frame.marshal(header, 0))


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _recording(messages: Iterator[Outgoing], read: list[Outgoing]) -> Iterator[Outgoing]:
    """``messages``, each appended to ``read`` as it is taken."""
    for message in messages:
        read.append(message)
        yield message
