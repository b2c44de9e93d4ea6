"""A message on its way out: what the bus publishes, built from an event or copied
from a message received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pamqp import commands as spec

from shared.events import CONTENT_TYPE, Event

__all__ = ["MAX_PRIORITY", "PRIORITY_LEVELS", "Outgoing", "event_message"]

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
