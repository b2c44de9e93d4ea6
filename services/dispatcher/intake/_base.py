"""What every intake handler shares: its dependencies, how it finds the recipient,
how it records and hands over a notification, and how it says no.

A handler (``async def on_x(event, deps)``) decides whether the user wants to hear
about the event, puts it in words (a ``planning.Draft``), has it planned and
recorded (``deps.notify``: once, whatever happens to the event afterwards) and,
once that is committed, hands what is due to the delivery stage
(``deps.hand_over``). It knows nothing of acks: ``Retry``, ``Defer`` and ``Ignore``
tell the bus what to do with the event.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn, Protocol, TypeVar

import asyncpg
import structlog

from shared.batching import Coalesced
from shared.bus import Bus
from shared.db import Connection
from shared.erasure import erased_since
from shared.errors import Ignore, Retry
from shared.events import Event, Payload, derived_id
from shared.sealing import Sealer
from shared.settings import Settings

from .. import delivery, history, recipients
from ..mail import MailTransport
from ..metrics import DispatcherMetrics
from ..planning import Draft, Planner, Recorder
from ..recipient_cache import RecipientCache
from ..recipients import Recipient

log = structlog.get_logger("herald.dispatcher")

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class IntakeDeps:
    pool: asyncpg.Pool
    bus: Bus
    planner: Planner
    deliveries: delivery.DeliveryDeps
    settings: Settings
    metrics: DispatcherMetrics
    # where e-mail goes; erasure asks it to forget a user's mail (the outbox keeps it)
    mail: MailTransport
    # opens endpoints' sealed URLs and secrets
    sealer: Sealer
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # recipients kept between notifications (None: read every time)
    recipient_cache: RecipientCache | None = None
    # round trips shared by the events in flight (outside transactions): one query
    # loads many recipients, one statement records many notifications
    load_recipient: Coalesced[str, Recipient | None] = field(init=False)
    record: Coalesced[history.Plan, history.Recorded] = field(init=False)

    def __post_init__(self) -> None:
        async def load(user_ids: list[str]) -> list[Recipient | None]:
            async with self.pool.acquire() as conn:
                return await recipients.load_many(
                    conn, self.sealer, user_ids, left_out=self.left_out
                )

        async def record(plans: list[history.Plan]) -> list[history.Recorded]:
            async with self.pool.acquire() as conn:
                return await history.record_many(conn, plans)

        object.__setattr__(self, "load_recipient", Coalesced(load))
        object.__setattr__(self, "record", Coalesced(record))

    @property
    def left_out(self) -> recipients.LeftOut:
        return recipients.reported(self.metrics, self.bus.service)

    async def recipient(self, user_id: str) -> Recipient | None:
        """The recipient, from memory or a query shared with other events."""
        if self.recipient_cache is None:
            return await self.load_recipient(user_id)
        return await self.recipient_cache.get(user_id, self.load_recipient)

    async def notify(self, record: Recorder, draft: Draft) -> delivery.Planned:
        """Plan ``draft`` and record it with ``record`` (``self.record``, or
        ``on_connection`` inside the handler's transaction)."""
        return await self.planner.record(record, draft)

    async def hand_over(self, planned: delivery.Planned | None, correlation_id: str) -> None:
        """Send what ``planned`` has due; call once its record is committed."""
        await delivery.hand_over(self.deliveries, planned, correlation_id)

    def suppressed(self, kind: str, why: str) -> None:
        self.metrics.notifications.labels(self.bus.service, kind, "suppressed").inc()
        log.info("notification_suppressed", kind=kind, reason=why)


def on_connection(conn: Connection) -> Recorder:
    """Record on ``conn`` (inside the caller's transaction)."""

    async def record(plan: history.Plan) -> history.Recorded:
        return (await history.record_many(conn, [plan]))[0]

    return record


async def recipient_of(
    conn: Connection, deps: IntakeDeps, user_id: str, event_time: datetime
) -> Recipient:
    """The recipient, read on ``conn``; the event waits for a user not known yet."""
    found = await recipients.load(conn, deps.sealer, user_id, left_out=deps.left_out)
    if found is None:
        await unknown(conn, user_id, event_time)
    return found


async def unknown(conn: Connection, user_id: str, event_time: datetime) -> NoReturn:
    if await erased_since(conn, user_id, event_time):
        raise Ignore(f"user {user_id!r} was erased after this event")
    # user.signed_up travels on another queue and may simply not be here yet
    raise Retry(f"user {user_id!r} is not known (no user.signed_up yet)")


class IntakeHandler(Protocol[P]):
    async def __call__(self, event: Event[P], deps: IntakeDeps) -> None: ...


def finishes_replays(handler: IntakeHandler[P]) -> IntakeHandler[P]:
    """A redelivered event whose notification was recorded the first time finishes
    what it planned (a publish lost after the commit), whatever preferences or the
    job say now: they were applied when it was planned."""

    @functools.wraps(handler)
    async def handle(event: Event[P], deps: IntakeDeps) -> None:
        notification_id = uuid.UUID(derived_id("notification", event.id))
        async with deps.pool.acquire() as conn:
            recorded = await history.notification_exists(conn, notification_id)
            due = await history.pending(conn, notification_id) if recorded else []
        if not recorded:
            await handler(event, deps)
            return
        await delivery.publish_due(deps.bus, due, event.correlation_id)

    return handle
