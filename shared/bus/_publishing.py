"""Confirmed publishing: one path, for one message or a batch.

Every publish, ``Bus.publish`` included, is a batch: written in order through
``_fastpath.write`` (a batch's frames go to the socket together; aiormq matches
each confirm to its message), the confirms then gathered, so a batch costs about one
round trip rather than one each.

A publish that the broker did not confirm (connection or channel lost, nack) is
published again, once reconnected, until ``timeout``; the consumers are idempotent,
so a copy the broker took just before the loss costs nothing. A message that cannot
be encoded (pamqp refuses a property, or its header would not fit in one frame) is
never written: it raises ``Unpublishable`` once the others are confirmed, and
leaves the channel as it was.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import aiormq

from shared.errors import BusUnavailable, Unpublishable
from shared.metrics import ServiceMetrics

from . import _fastpath
from ._outgoing import Outgoing

__all__ = ["BROKER_ERRORS", "Publisher"]

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
        sent: list[Outgoing] = []

        def recorded() -> Iterator[Outgoing]:
            for message in messages:
                sent.append(message)
                yield message

        outcomes: list[Any] = await asyncio.gather(
            *await _fastpath.write(channel, self._exchange, recorded()), return_exceptions=True
        )
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


def _recording(messages: Iterator[Outgoing], read: list[Outgoing]) -> Iterator[Outgoing]:
    """``messages``, each appended to ``read`` as it is taken."""
    for message in messages:
        read.append(message)
        yield message
