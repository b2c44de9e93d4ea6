"""Many confirmed publishes written to the socket together.

aiormq (under aio-pika) makes each publish a socket write of its own and holds the
channel until the connection's writer has sent it, so publishes go out one at a time
with a few event-loop turns and a system call each: about 0.15 to 0.25 ms of CPU per
message here, against 0.03 ms when a thousand go out in one write (the broker's own
floor on two cores). A matcher announcing hundreds of matches for one job pays the
difference on every job.

``write_batch`` does for a batch what ``aiormq.Channel.basic_publish`` does for one
message — delivery tags and confirmation futures taken under the channel's lock, in
order — but hands the frames of the whole batch to the connection's writer as one
buffer per ``CHUNK`` messages, waiting for room in the connection's bounded frame
queue as ``basic_publish`` does. Confirms (and nacks, and a channel closing) come
back through aiormq's own bookkeeping, exactly as for ``basic_publish``. It uses
aiormq ``Channel`` attributes that are public but not documented (``lock``, ``delivery_tag``, ``confirmations``,
``write_queue``, ``create_future``, ``number``, ``max_content_size``);
``supports(channel)`` says whether they are there, and the bus publishes one by one
when they are not.

Messages come as AMQP properties and a body, not as ``aio_pika.Message``: building
one of those (its fields checked and copied, then copied again into properties)
and pamqp marshalling the same ``Basic.Publish`` method for every message cost
about 15 µs a message, as much as everything else a matcher does to announce a
match. The method frame is marshalled once per routing key here; each message
marshals only its own header and body, and the header's properties are encoded
here (``header_frame``) rather than by pamqp, which looks each one's type up and
dispatches on it (3.3 µs a header against 7.5). A header with application headers
goes to pamqp, whose table encoding this does not repeat.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeGuard

from aiormq.abc import ChannelFrame
from aiormq.channel import Channel
from pamqp import commands as spec
from pamqp import frame as amqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

__all__ = ["CHUNK", "Outgoing", "header_frame", "supports", "write_batch"]

Outgoing = tuple[str, spec.Basic.Properties, bytes]
"""What ``write_batch`` publishes: routing key, properties, body."""

# messages per socket write: large enough that the per-write cost vanishes, small
# enough that one write stays well under a megabyte for ordinary events
CHUNK = 256

_NEEDED = (
    "lock",
    "delivery_tag",
    "confirmations",
    "write_queue",
    "create_future",
    "number",
    "max_content_size",
    "publisher_confirms",
)


# Basic.Properties in wire order: attribute, flag bit, encoding (s: short string,
# o: octet, t: 64-bit timestamp, h: field table)
_PROPERTIES = (
    ("content_type", 0x8000, "s"),
    ("content_encoding", 0x4000, "s"),
    ("headers", 0x2000, "h"),
    ("delivery_mode", 0x1000, "o"),
    ("priority", 0x0800, "o"),
    ("correlation_id", 0x0400, "s"),
    ("reply_to", 0x0200, "s"),
    ("expiration", 0x0100, "s"),
    ("message_id", 0x0080, "s"),
    ("timestamp", 0x0040, "t"),
    ("message_type", 0x0020, "s"),
    ("user_id", 0x0010, "s"),
    ("app_id", 0x0008, "s"),
    ("cluster_id", 0x0004, "s"),
)
_FRAME_START = struct.Struct(">BHI")  # frame type, channel, payload size
_HEADER_START = struct.Struct(">HHQH")  # class, weight, body size, property flags
_FRAME_HEADER = 2
_FRAME_END = b"\xce"
_EMPTY_TABLE = b"\x00\x00\x00\x00"


def header_frame(properties: spec.Basic.Properties, body_size: int, channel_number: int) -> bytes:
    """The content header frame of one message, as ``pamqp.frame.marshal`` writes it
    for ``ContentHeader(properties=properties, body_size=body_size)``."""
    flags = 0
    parts: list[bytes] = []
    for name, flag, kind in _PROPERTIES:
        value = getattr(properties, name)
        if value is None or value == "":  # pamqp leaves these out
            continue
        if kind == "s":
            encoded = value.encode()
            if len(encoded) > 255:  # pamqp refuses it, with its own error
                return _pamqp_header_frame(properties, body_size, channel_number)
            parts.append(bytes((len(encoded),)) + encoded)
        elif kind == "o":
            parts.append(bytes((value,)))
        elif kind == "t":
            if not isinstance(value, datetime):
                return _pamqp_header_frame(properties, body_size, channel_number)
            if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
                value = value.replace(tzinfo=UTC)  # pamqp takes a naive time as UTC
            parts.append(int(value.timestamp()).to_bytes(8, "big"))
        elif value:  # a table with entries: pamqp's encoder
            return _pamqp_header_frame(properties, body_size, channel_number)
        else:
            parts.append(_EMPTY_TABLE)
        flags |= flag
    payload = _HEADER_START.pack(spec.Basic.frame_id, 0, body_size, flags) + b"".join(parts)
    return _FRAME_START.pack(_FRAME_HEADER, channel_number, len(payload)) + payload + _FRAME_END


def _pamqp_header_frame(
    properties: spec.Basic.Properties, body_size: int, channel_number: int
) -> bytes:
    return amqp_frame.marshal(
        ContentHeader(properties=properties, body_size=body_size), channel_number
    )


def supports(channel: object) -> TypeGuard[Channel]:
    """Whether ``channel`` is an aiormq channel with confirms this module can drive."""
    return (
        isinstance(channel, Channel)
        and all(hasattr(channel, name) for name in _NEEDED)
        and bool(channel.publisher_confirms)
    )


async def write_batch(
    channel: Channel, exchange: str, messages: Iterable[Outgoing]
) -> list[asyncio.Future[Any]]:
    """Write ``(routing_key, properties, body)`` messages to ``exchange`` (not
    mandatory), in order; one future per message, resolved by the broker's ack,
    failed by its nack (``DeliveryError``) or by the channel closing.

    ``messages`` is read a chunk at a time, and each chunk is handed to the writer
    before the next is read and marshalled, so the broker is already routing the
    first messages of a large batch while the last are being built."""
    confirmations: list[asyncio.Future[Any]] = []
    methods: dict[str, bytes] = {}
    number, size = channel.number, channel.max_content_size
    pending = iter(messages)
    while chunk := list(itertools.islice(pending, CHUNK)):
        async with channel.lock:
            first_tag = channel.delivery_tag + 1
            futures: list[asyncio.Future[Any]] = []
            frames: list[bytes] = []
            try:
                # a message that cannot be encoded (a property pamqp refuses) fails
                # the chunk before it is written, its tags given back below
                for routing_key, properties, body in chunk:
                    channel.delivery_tag += 1
                    confirmation = channel.create_future()
                    channel.confirmations[channel.delivery_tag] = confirmation
                    futures.append(confirmation)
                    method = methods.get(routing_key)
                    if method is None:  # pamqp validates each one it builds
                        method = methods[routing_key] = amqp_frame.marshal(
                            spec.Basic.Publish(
                                exchange=exchange, routing_key=routing_key, mandatory=False
                            ),
                            number,
                        )
                    frames.append(method)
                    frames.append(header_frame(properties, len(body), number))
                    frames += (
                        amqp_frame.marshal(ContentBody(body[i : i + size]), number)
                        for i in range(0, len(body), size)
                    )
                # the connection's frame queue is bounded (aiormq keeps ten): wait for
                # room, as basic_publish does, rather than lose a write whose tags are
                # taken (the broker would then number every later confirm differently)
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
        await asyncio.sleep(0)  # the connection's writer sends it now
    return confirmations
