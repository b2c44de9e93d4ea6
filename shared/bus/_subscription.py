"""What a subscription is: a work queue, its handlers, and how it waits and retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiormq

from shared.events import Event

from ._fastpath import Acks
from ._topology import QueueNames, topic_matches

__all__ = ["Handler", "Subscription"]

Handler = Callable[[Event[Any]], Awaitable[None]]


@dataclass
class Subscription:
    names: QueueNames
    handlers: dict[str, Handler]
    prefetch: int
    retry_delays: tuple[float, ...]
    # where ``Defer`` sends a message: the first step at least as long as asked
    defer_steps: tuple[float, ...]
    max_priority: int | None
    consumer_tag: str | None = None
    # the consumer channel of the current connection (aiormq's, under aio-pika's)
    channel: aiormq.Channel | None = field(default=None, repr=False)
    # its acks, written together
    acks: Acks | None = field(default=None, repr=False)

    @property
    def delays(self) -> list[float]:
        """Every delay queue of this work queue (retry and defer steps share them)."""
        return sorted(set(self.retry_delays) | set(self.defer_steps))

    def handler_for(self, event_type: str) -> Handler | None:
        handler = self.handlers.get(event_type)
        if handler is not None:
            return handler
        return next(
            (fn for key, fn in self.handlers.items() if topic_matches(key, event_type)), None
        )

    def delay_for(self, wanted: float, steps: Sequence[float] = ()) -> float:
        """The first of ``steps`` (by default every delay queue) at least ``wanted``
        long; the longest when none is."""
        steps = steps or self.delays
        return next((d for d in steps if d >= wanted), steps[-1])
