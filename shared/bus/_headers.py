"""Header names Herald puts on messages it retries, parks or replays, and the one
way such a copy is made."""

from datetime import datetime
from typing import Any, Protocol

import aio_pika
from pamqp import commands as spec

ATTEMPT = "x-herald-attempt"
LAST_ERROR = "x-herald-error"
PARKED_REASON = "x-herald-parked-reason"
PARKED_AT = "x-herald-parked-at"
ORIGIN_QUEUE = "x-herald-queue"
ORIGIN_ROUTING_KEY = "x-herald-routing-key"
REPLAYED = "x-herald-replayed"

# A reason header must stay readable and fit comfortably in an AMQP frame.
MAX_ERROR_LENGTH = 2000


def clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


class Copyable(Protocol):
    """What a copy is made of: an aio-pika ``IncomingMessage`` or the bus's ``Received``."""

    @property
    def body(self) -> bytes: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def timestamp(self) -> datetime | None: ...
    @property
    def app_id(self) -> str | None: ...
    @property
    def priority(self) -> int | None: ...


def copy_properties(message: Copyable, headers: dict[str, Any]) -> spec.Basic.Properties:
    """The properties of the same message (ids, type, time, priority), persistent,
    with ``headers``: what the bus publishes for a retry or a park."""
    return copy_message(message, headers).properties


def copy_message(message: Copyable, headers: dict[str, Any]) -> aio_pika.Message:
    """The same message (body, ids, type, time, priority), persistent, with ``headers``."""
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        timestamp=message.timestamp,
        app_id=message.app_id,
        priority=message.priority,
    )
