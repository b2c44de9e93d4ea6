"""Acknowledgements of one consumer channel written together.

aiormq writes each ``basic.ack`` as a frame of its own: a trip through the
connection's frame queue, a wake-up of its writer and a system call per message.
Messages finished in the same pass of the event loop are acked here by one write
carrying all their ``basic.ack`` frames, the way ``_pipeline`` writes publishes.
Each ack still names its own delivery tag (``multiple`` would also ack messages
still being handled), so nothing changes for the broker but the number of writes.

A message from another channel (one that a reconnect replaced) is acked on its own
channel (``Received.ack``), and fails there as it should: that channel is closed,
and its tag would mean nothing on the new one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.abc import ChannelFrame
from aiormq.channel import Channel
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec

from ._received import Received

__all__ = ["Acks"]

_NEEDED = ("write_queue", "number", "create_future", "is_closed")


class Acks:
    def __init__(self, channel: Any) -> None:
        usable = isinstance(channel, Channel) and all(hasattr(channel, a) for a in _NEEDED)
        self._channel: Channel | None = channel if usable else None
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._scheduled = False

    async def ack(self, message: Received) -> None:
        """Ack ``message``; returns once its frame is written. Raises as
        ``message.ack()`` would when the channel is gone."""
        channel = self._channel
        tag = message.delivery_tag
        if channel is None or message.channel is not channel or tag is None:
            await message.ack()
            return
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel!r} closed")
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
        assert channel is not None
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
                if written.done():
                    continue
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
