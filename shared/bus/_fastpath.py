"""The bus's one private path: confirmed publishes written to the socket together.

aiormq's ``Channel.basic_publish`` makes each publish a task of its own, a turn of the
channel's lock, a trip through the connection's frame queue and a socket write.
For a batch (a matcher announcing hundreds of matches, a dispatcher its outcomes)
that per-message cost is most of what publishing costs (the figures that made it
worth this module are in ``docs/performance.md``). ``write`` does for many messages
what ``basic_publish`` does for one — delivery tags and confirmation futures taken
under the channel's lock, in order, and given back if the write never happens — but
hands the frames of ``CHUNK`` messages to the connection's writer as one buffer.
Confirms, nacks, returns and a channel closing come back through aiormq's own
bookkeeping, exactly as for ``basic_publish``.

It uses aiormq ``Channel`` attributes that are public but not documented (``lock``,
``delivery_tag``, ``confirmations``, ``message_id_delivery_tag``, ``write_queue``,
``create_future``, ``number``, ``max_content_size``). That is why aiormq and pamqp
are pinned to the minor versions this was tested with and a bus refuses to start on
others (``_versions``). Frames are encoded by pamqp; nothing here is hand-encoded.

``Acks`` does the same for acknowledgements: aiormq's ``basic_ack`` writes each as a
frame of its own (a trip through the frame queue, a wake-up of its writer, a system
call, and as many reads for the broker). Acks due in the same pass of the event
loop go out as one write of their ``basic.ack`` frames, each naming its own delivery
tag (``multiple`` would also ack messages still being handled).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from typing import Any

from aiormq import Channel
from aiormq.abc import ChannelFrame
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec
from pamqp import frame as amqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from ._outgoing import Outgoing
from ._received import Received

__all__ = ["CHUNK", "Acks", "write"]

# messages per socket write: large enough that the per-write cost vanishes, small
# enough that one write stays well under a megabyte for ordinary events
CHUNK = 256

_FRAME_OVERHEAD = len(amqp_frame.marshal(ContentBody(b""), 0))


async def write(
    channel: Channel, exchange: str, messages: Iterable[Outgoing]
) -> list[asyncio.Future[Any]]:
    """Write ``messages`` in order; one future per message, resolved by the broker's
    confirm, failed by its nack, by the channel closing, or at once (``TypeError``,
    ``ValueError``) for a message that cannot be encoded, which is never written.

    ``messages`` is read a chunk at a time, and each chunk is handed to the writer
    before the next is read and encoded, so the broker is already routing the first
    messages of a large batch while the last are being built."""
    loop = asyncio.get_running_loop()
    confirmations: list[asyncio.Future[Any]] = []
    methods: dict[tuple[str, str, bool], bytes] = {}
    pending = iter(messages)
    while chunk := list(itertools.islice(pending, CHUNK)):
        if confirmations:
            await asyncio.sleep(0)  # the connection's writer sends the last chunk now
        # encoded before any tag is taken: a message pamqp refuses fails alone
        encoded = [_encoded(channel, exchange, m, methods) for m in chunk]
        async with channel.lock:
            first_tag = channel.delivery_tag + 1
            futures: list[asyncio.Future[Any]] = []
            frames: list[bytes] = []
            try:
                for message, frames_or_error in zip(chunk, encoded, strict=True):
                    if isinstance(frames_or_error, Exception):
                        refused = loop.create_future()
                        refused.set_exception(frames_or_error)
                        futures.append(refused)
                        continue
                    channel.delivery_tag += 1
                    confirmation = channel.create_future()
                    channel.confirmations[channel.delivery_tag] = confirmation
                    if message.to_queue and message.properties.message_id:
                        _track_returns(channel, message.properties.message_id, confirmation)
                    futures.append(confirmation)
                    frames.append(frames_or_error)
                # the connection's frame queue is bounded: wait for room, as
                # basic_publish does, rather than lose a write whose tags are taken
                # (the broker would then number every later confirm differently)
                await channel.write_queue.put(
                    ChannelFrame(payload=b"".join(frames), should_close=False)
                )
            except BaseException:
                # never written: give the tags back while the lock is still held, so
                # the broker's confirms keep matching the futures of later messages
                for tag in range(first_tag, channel.delivery_tag + 1):
                    channel.confirmations.pop(tag, None)
                channel.delivery_tag = first_tag - 1
                for future in futures:
                    future.cancel()
                raise
            confirmations += futures
    return confirmations


def _encoded(
    channel: Channel,
    exchange: str,
    message: Outgoing,
    methods: dict[tuple[str, str, bool], bytes],
) -> bytes | Exception:
    """The frames of ``message`` (method, header, body), or why it cannot be sent."""
    number, size = channel.number, channel.max_content_size
    target = "" if message.to_queue else exchange
    try:
        key = (target, message.routing_key, message.to_queue)
        method = methods.get(key)
        if method is None:
            method = methods[key] = amqp_frame.marshal(
                spec.Basic.Publish(
                    exchange=target, routing_key=message.routing_key, mandatory=message.to_queue
                ),
                number,
            )
        body = message.body
        header = amqp_frame.marshal(
            ContentHeader(properties=message.properties, body_size=len(body)), number
        )
    except (TypeError, ValueError) as exc:  # pamqp refuses a property
        return exc
    if len(header) - _FRAME_OVERHEAD > size:
        # the broker would close the connection over it, and every retry after
        return ValueError("its headers do not fit in one frame")
    parts = [method, header]
    parts += (
        amqp_frame.marshal(ContentBody(body[i : i + size]), number)
        for i in range(0, len(body), size)
    )
    return b"".join(parts)


def _track_returns(channel: Channel, message_id: str, confirmation: asyncio.Future[Any]) -> None:
    """What ``basic_publish`` does for a mandatory message, so that a return (the
    queue is missing) settles its confirmation."""
    tag = channel.delivery_tag
    channel.message_id_delivery_tag[message_id] = tag

    def forget(_: asyncio.Future[Any]) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            channel.message_id_delivery_tag.pop(message_id)

    confirmation.add_done_callback(forget)


class Acks:
    """The acks of one consumer channel, written together."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._scheduled = False

    async def ack(self, message: Received) -> None:
        """Ack ``message``; returns once its frame is written. Raises, as
        ``basic_ack`` does, when the channel is gone; a message from another channel
        (one a reconnect replaced) is acked on its own, and fails there."""
        channel, tag = self._channel, message.delivery_tag
        if message.channel is not channel or tag is None:
            await message.ack()
            return
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._waiting.append((tag, written))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await written

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._write(batch))
            task.add_done_callback(_retrieved)

    async def _write(self, batch: list[tuple[int, asyncio.Future[None]]]) -> None:
        channel = self._channel
        try:
            if channel.is_closed:
                raise ChannelInvalidStateError(f"{channel!r} closed")
            drained = channel.create_future()
            await channel.write_queue.put(
                ChannelFrame.marshall(
                    frames=[spec.Basic.Ack(delivery_tag=tag) for tag, _ in batch],
                    channel_number=channel.number,
                    drain_future=drained,
                )
            )
            await drained
        except BaseException as exc:
            for _, written in batch:
                if not written.done():
                    if isinstance(exc, Exception):
                        written.set_exception(exc)
                    else:
                        written.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for _, written in batch:
            if not written.done():
                written.set_result(None)


def _retrieved(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
