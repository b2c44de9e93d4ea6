"""Room for inline sends: deliveries sent by the dispatcher that recorded them,
without a trip through the delivery queue (``delivery.hand_over``).

Intake records a notification's deliveries already claimed when this dispatcher
has room, and sends them once its event is handled: no ``delivery.due`` to publish,
consume and claim. What makes this as safe as the queue:

- the claim is in the same statement as the rows, so a dispatcher killed before it
  sends leaves claimed rows whose lease runs out; the releaser's sweep then hands
  them to the delivery queue;
- a retry or a rate-limit wait goes to the delivery queue's delay queues, where
  the ``Retry`` or ``Defer`` the attempt decided would send a queued delivery;
- on shutdown, sends in flight finish before the bus stops (up to the drain
  timeout), while new deliveries go through the queue.

When every slot is taken, intake waits a moment for one to free up (``PATIENCE``):
with a backlog, intake outruns the sends, and what spills to the queue costs a
publish, a consume and a claim more per delivery. When the slots stay taken (slow
endpoints), new deliveries go through the queue as before, where other replicas and
the urgent consumer can take them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("herald.dispatcher")

# Sends to a healthy endpoint take milliseconds, so this finds room when the slots are
# merely busy; slots held by slow endpoints cost intake at most this per event.
PATIENCE = 0.05


class InlineSlots:
    def __init__(self, capacity: int, drain_timeout: float) -> None:
        self._capacity = capacity
        self._drain_timeout = drain_timeout
        self._running: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()
        self._closing = False

    def has_room(self, count: int) -> bool:
        """Whether ``count`` more sends fit now. A soft limit: what is claimed
        because it said yes is always taken."""
        return not self._closing and len(self._running) + count <= self._capacity

    async def room(self, count: int, patience: float = PATIENCE) -> bool:
        """``has_room``, waiting up to ``patience`` seconds for sends to finish."""
        if self._closing or count > self._capacity:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while not self.has_room(count):
            left = deadline - loop.time()
            if left <= 0 or self._closing:
                return False
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), left)
        return True

    def start(self, send: Coroutine[Any, Any, None]) -> None:
        """Run ``send`` in a slot of its own."""
        task = asyncio.create_task(send)
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._freed.set()

    async def run(self) -> None:
        """Background work: nothing to do until shutdown, then let the sends in flight
        finish while the bus still runs (their outcomes are announced on it)."""
        try:
            await asyncio.Event().wait()
        finally:
            self._closing = True
            if self._running:
                log.info("inline_deliveries_draining", in_flight=len(self._running))
                _, pending = await asyncio.wait(list(self._running), timeout=self._drain_timeout)
                for task in pending:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.gather(*pending, return_exceptions=True)
