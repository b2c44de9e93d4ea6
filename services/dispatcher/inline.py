"""Deliveries sent by the dispatcher that recorded them, without a trip through the
delivery queue.

Intake records a notification's deliveries already claimed (``history.Entry.claim``)
when this dispatcher has room, acks its event, and sends them here at once: no
``delivery.due`` to publish, consume and claim. What makes this as safe as the
queue:

- the claim is in the same statement as the rows, so a dispatcher killed before it
  sends leaves claimed rows whose lease runs out; the releaser's sweep then hands
  them to the delivery queue;
- a retry or a rate-limit wait goes to the delivery queue's delay queues, exactly
  where a ``Retry`` or ``Defer`` of the queue's own handler would send it;
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
import uuid
from collections.abc import Awaitable

import structlog

from shared.bus import catalog, retry_step
from shared.endpoints import Endpoint
from shared.errors import BusUnavailable, Defer, Retry
from shared.events import DeliveryDue, Priority, UrgentDeliveryDue, derived_id, new_event

from . import history
from .channels import delivery_id
from .delivery import SOURCE, DeliveryDeps, attempt, reserve_ahead
from .planner import Planned
from .ratelimit import Turn

log = structlog.get_logger("herald.dispatcher")

# Sends to a healthy endpoint take milliseconds, so this finds room when the slots are
# merely busy; slots held by slow endpoints cost intake at most this per event.
PATIENCE = 0.05


class InlineDeliveries:
    def __init__(self, deps: DeliveryDeps, capacity: int, drain_timeout: float) -> None:
        self._deps = deps
        self._capacity = capacity
        self._drain_timeout = drain_timeout
        self._running: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()
        self._closing = False

    @property
    def lease(self) -> float:
        return self._deps.lease

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

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._freed.set()

    def reserve_ahead(self, e: history.Entry) -> dict[uuid.UUID, asyncio.Future[Turn]]:
        """Rate-limit reservations for the deliveries ``e`` will record claimed, started
        now so that their round trip overlaps the record's rather than following it."""
        n = e.draft.notification
        turns = {}
        for endpoint, hold in e.plan:
            if hold is None:
                turn = reserve_ahead(self._deps, n, endpoint)
                if turn is not None:
                    turns[delivery_id(n.id, endpoint.id)] = turn
        return turns

    def start(self, planned: Planned, correlation_id: str) -> list[history.Due]:
        """Send the deliveries ``planned`` recorded claimed; the others (due now but
        not claimed) are returned for the delivery queue."""
        if planned.entry is None or not planned.claims:
            return planned.due
        draft = planned.entry.draft
        n = draft.notification
        endpoints = {delivery_id(n.id, e.id): e for e, _ in planned.entry.plan}
        rest = []
        for due in planned.due:
            token = planned.claims.get(due.id)
            if token is None:
                rest.append(due)
                continue
            claimed = history.Claimed(
                due.id, 0, token, n, draft.kind, draft.job_id, endpoints[due.id]
            )
            task = asyncio.create_task(
                self._send(claimed, correlation_id, planned.turns.get(due.id))
            )
            self._running.add(task)
            task.add_done_callback(self._finished)
        return rest

    async def _send(
        self, claimed: history.Claimed, correlation_id: str, turn: Awaitable[Turn] | None
    ) -> None:
        # planned from a recipient's endpoints: opened, never Unreadable
        assert isinstance(claimed.endpoint, Endpoint)
        try:
            later = await attempt(self._deps, claimed, claimed.endpoint, correlation_id, turn)
            if isinstance(later, Defer):
                await self._come_back(claimed, later.after, correlation_id, deferred=True)
            elif later is not None:
                await self._come_back(
                    claimed, self._retry_delay(claimed, later), correlation_id, deferred=False
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # the claim runs out and the sweep hands the delivery to the queue
            log.warning("inline_delivery_failed", channel=claimed.endpoint.type, exc_info=True)

    def _retry_delay(self, claimed: history.Claimed, retry: Retry) -> float:
        """The delay the queue's own retry would pick after this attempt."""
        delays = self._deps.settings.delivery_retry_delays
        step = retry_step(claimed.attempts + 1, delays, retry.after)
        return delays[step] if step is not None else delays[-1]

    async def _come_back(
        self, claimed: history.Claimed, after: float, correlation_id: str, *, deferred: bool
    ) -> None:
        """Through the delivery queue's delay queues: the attempt just made counts
        unless it was only a rate-limit wait."""
        n = claimed.notification
        event = new_event(
            (UrgentDeliveryDue if n.priority == "urgent" else DeliveryDue)(
                delivery_id=str(claimed.id),
                notification_id=str(n.id),
                user_id=n.user_id,
                channel=claimed.endpoint.type if claimed.endpoint else "",
                priority=Priority(n.priority),
            ),
            source=SOURCE,
            id=derived_id("delivery.due", str(claimed.id)),
            subject=n.user_id,
            correlation_id=correlation_id,
        )
        queue = (
            catalog.DISPATCHER_URGENT if n.priority == "urgent" else catalog.DISPATCHER_DELIVERIES
        )
        bus = self._deps.bus
        try:
            await bus.publish_later(
                queue, event, after=after, attempts=claimed.attempts + (0 if deferred else 1)
            )
        except BusUnavailable:
            # the row says when it is due (retry_at): the sweep republishes it
            log.warning("inline_retry_not_queued", delivery_id=str(claimed.id))

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
