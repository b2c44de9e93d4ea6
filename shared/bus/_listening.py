"""Live listeners: every event of some types published while connected, on a queue
of this process's own, for live views rather than work (see ``Bus.listen``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from shared.errors import InvalidEvent
from shared.events import Event, parse_event

from ._topology import declare_exchange

__all__ = ["Listener", "Listening", "open_listener"]

log = structlog.get_logger("herald.bus")

# What a listener gets: a parsed event, no ack, no retry.
Listener = Callable[[Event[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Listening:
    bindings: tuple[str, ...]
    callback: Listener
    max_length: int


async def open_listener(
    connection: AbstractConnection,
    namespace: str,
    service: str,
    listening: Listening,
    *,
    received: Callable[[Event[Any]], Event[Any]],
    on_closed: Callable[..., None],
) -> None:
    """Declare ``listening``'s queue (exclusive, gone with its connection) and hand
    each event to its callback; events that do not parse and callbacks that fail
    are logged and dropped."""
    channel = await connection.channel()
    channel.close_callbacks.add(on_closed)
    exchange = await declare_exchange(channel, namespace)
    queue = await channel.declare_queue(
        # named for the operator who sees it in a listing; unique per connection
        f"{namespace}.{service}.live.{uuid.uuid4().hex[:12]}",
        exclusive=True,
        auto_delete=True,
        arguments={"x-max-length": listening.max_length, "x-overflow": "drop-head"},
    )
    for key in listening.bindings:
        await queue.bind(exchange, routing_key=key)

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            event = received(parse_event(message.body))
        except InvalidEvent as exc:
            log.info("listener_skipped_invalid_event", error=exc.reason)
            return
        try:
            await listening.callback(event)
        except Exception as exc:
            log.warning("listener_failed", error=f"{type(exc).__name__}: {exc}")

    await queue.consume(on_message, no_ack=True, exclusive=True)
