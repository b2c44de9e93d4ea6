"""A consumed message as the bus reads it, straight from aiormq.

aio-pika hands each delivery to its consumer as an ``IncomingMessage``: every
property copied through a guarded ``__setattr__`` (two dozen calls a message), then
the callback run in a task of its own, on top of the task aiormq already made for
the delivery. Under load that was about 5 % of a dispatcher's CPU for properties the
bus mostly never reads. ``Received`` reads them from aiormq's ``DeliveredMessage``
when asked, and the bus consumes through aiormq's ``basic_consume``, so a delivery
costs one task.

It offers what the bus and ``_headers.copy_message`` use, under the names aio-pika
gives them, so a retried or parked copy is the same message either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiormq.abc import AbstractChannel, DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError

__all__ = ["Received"]


class Received:
    __slots__ = ("_delivered",)

    def __init__(self, delivered: DeliveredMessage) -> None:
        self._delivered = delivered

    @property
    def body(self) -> bytes:
        return self._delivered.body

    @property
    def headers(self) -> dict[str, Any]:
        return self._delivered.header.properties.headers or {}

    @property
    def routing_key(self) -> str | None:
        return self._delivered.routing_key

    @property
    def delivery_tag(self) -> int | None:
        return self._delivered.delivery_tag

    @property
    def redelivered(self) -> bool | None:
        return self._delivered.redelivered

    @property
    def channel(self) -> AbstractChannel:
        """The channel it came on; raises, as aio-pika does, once that is closed."""
        channel = self._delivered.channel
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel!r} closed")
        return channel

    @property
    def content_type(self) -> str | None:
        return self._delivered.header.properties.content_type

    @property
    def message_id(self) -> str | None:
        return self._delivered.header.properties.message_id

    @property
    def correlation_id(self) -> str | None:
        return self._delivered.header.properties.correlation_id

    @property
    def type(self) -> str | None:
        return self._delivered.header.properties.message_type

    @property
    def timestamp(self) -> datetime | None:
        return self._delivered.header.properties.timestamp

    @property
    def app_id(self) -> str | None:
        return self._delivered.header.properties.app_id

    @property
    def priority(self) -> int | None:
        return self._delivered.header.properties.priority

    async def ack(self) -> None:
        tag = self.delivery_tag
        if tag is None:
            raise ChannelInvalidStateError("message has no delivery tag")
        await self.channel.basic_ack(tag, wait=False)
