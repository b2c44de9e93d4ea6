"""The delivery stage: one delivery, one attempt on one endpoint.

Deliveries come two ways and meet in ``attempt``:

- ``hand_over``: what intake recorded due now, once its transaction committed.
  Those recorded claimed (this dispatcher had room, ``make_room``) are sent here at
  once; the others are published as ``delivery.due`` (``delivery.urgent``).
- ``on_delivery_due``: a message from the delivery queue, which first claims its
  row (a duplicate message waits instead of sending twice).

``attempt`` waits for its rate-limit turn, sends through the channel, has the
outcome stored and announced (``outcomes.py``) and says what comes next: nothing,
a ``Retry`` (a transient failure; its wait is the retry schedule's step, also
stored on the row) or a ``Defer`` (a rate-limit wait that spends no attempt). The
queue's handler raises it for the bus; an inline send puts its delivery in the
delay queue the same decision picks (``Bus.publish_later``). ``due_event`` is the
one place a delivery message is built.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import asyncpg
import structlog

from shared.bus import Bus, catalog, retry_step
from shared.endpoints import Endpoint, Unreadable
from shared.errors import BusUnavailable, Defer, Retry
from shared.events import DeliveryDue, Event, Priority, UrgentDeliveryDue, derived_id, new_event
from shared.sealing import Sealer
from shared.settings import Settings

from . import claims
from .channels import Channel, DeliveryResult, Notification, Outcome
from .history import Due, Plan
from .inline import InlineSlots
from .outcomes import SOURCE, Outcomes
from .ratelimit import RateLimiter, Turn

log = structlog.get_logger("herald.dispatcher")


@dataclass(frozen=True)
class DeliveryDeps:
    pool: asyncpg.Pool
    bus: Bus
    channels: Mapping[str, Channel]
    settings: Settings
    # opens endpoints' sealed URLs and secrets
    sealer: Sealer
    outcomes: Outcomes
    limiter: RateLimiter
    # room for sends made by the dispatcher that recorded them (None: always the queue)
    inline: InlineSlots | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def max_attempts(self) -> int:
        return len(self.settings.delivery_retry_delays) + 1

    @property
    def lease(self) -> float:
        # Longer than one send takes (a Telegram text split in parts makes several
        # calls); short, because a dispatcher killed mid-send holds its deliveries
        # until the lease runs out.
        return self.settings.http_timeout * 4 + 10


@dataclass(frozen=True)
class Planned:
    """What intake hands over once its record is committed: ``created``,
    ``existing`` (a redelivered event: ``due`` is what it still has pending) or
    ``duplicate`` (de-duplicated, nothing due)."""

    outcome: str
    due: list[Due]
    plan: Plan | None = None
    # the deliveries recorded claimed by this dispatcher: id -> the claim's token
    claims: Mapping[uuid.UUID, datetime] = field(default_factory=dict)
    # rate-limit reservations started before the record, for those claimed
    turns: Mapping[uuid.UUID, Awaitable[Turn]] = field(default_factory=dict)


def due_event(due: Due, correlation_id: str) -> Event[DeliveryDue]:
    """The message that brings a delivery to the delivery stage: ``delivery.urgent``
    (consumed apart) for urgent ones, else ``delivery.due`` with its priority."""
    payload = (UrgentDeliveryDue if due.priority == "urgent" else DeliveryDue)(
        delivery_id=str(due.id),
        notification_id=str(due.notification_id),
        user_id=due.user_id,
        channel=due.channel,
        priority=Priority(due.priority),
    )
    return new_event(
        payload,
        source=SOURCE,
        id=derived_id("delivery.due", str(due.id)),
        subject=due.user_id,
        correlation_id=correlation_id,
    )


async def publish_due(bus: Bus, due: Iterable[Due], correlation_id: str) -> None:
    """Hand deliveries to the delivery queue."""
    await asyncio.gather(*(bus.publish(due_event(d, correlation_id)) for d in due))


async def make_room(
    deps: DeliveryDeps, plan: Plan
) -> tuple[Plan, dict[uuid.UUID, asyncio.Future[Turn]]]:
    """``plan`` to be recorded claimed when this dispatcher has room to send what is
    due itself, with the rate-limit reservations of those sends started now, so
    that their round trip overlaps the record's rather than following it."""
    due = [s for s in plan.sends if s.held_until is None]
    if deps.inline is None or not due or not await deps.inline.room(len(due)):
        return plan, {}
    priority = plan.notification.priority
    turns = {}
    for send in due:
        turn = deps.limiter.ahead(send.endpoint, priority)
        if turn is not None:
            turns[send.id] = turn
    return replace(plan, claim=deps.lease), turns


async def hand_over(deps: DeliveryDeps, planned: Planned | None, correlation_id: str) -> None:
    """Send what is due now: here when it was recorded claimed, else through the
    delivery queue. Call once what recorded it is committed."""
    if planned is None:
        return
    plan, rest = planned.plan, planned.due
    if plan is not None and planned.claims and deps.inline is not None:
        rest = [d for d in planned.due if d.id not in planned.claims]
        for send in plan.sends:
            token = planned.claims.get(send.id)
            if token is None:
                continue
            claimed = claims.Claimed(
                id=send.id,
                attempts=0,
                token=token,
                notification=replace(plan.notification, delivery_id=send.id),
                endpoint=send.endpoint,
            )
            turn = planned.turns.get(send.id)
            deps.inline.start(_send_here(deps, claimed, send.endpoint, correlation_id, turn))
    await publish_due(deps.bus, rest, correlation_id)


async def on_delivery_due(event: Event[DeliveryDue], deps: DeliveryDeps) -> None:
    delivery = uuid.UUID(event.data.delivery_id)
    async with deps.pool.acquire() as conn:
        claimed = await claims.claim(conn, delivery, deps.lease, deps.sealer)
    if isinstance(claimed, claims.Busy):
        if claimed.until is not None:
            wait = (claimed.until - deps.clock()).total_seconds()
            raise Defer(max(wait, 0.1), "another dispatcher holds this delivery")
        if claimed.finished is not None:
            # a duplicate message, or our announcement was lost after the outcome
            # was recorded: announce again (same event id, consumers keep one)
            await deps.outcomes.announce(
                claimed.finished, delivery=delivery, correlation_id=event.correlation_id
            )
        return
    if claimed.endpoint is None:
        async with deps.pool.acquire() as conn:
            await claims.mark(
                conn, delivery, claimed.token, "skipped", "endpoint removed or disabled"
            )
        return
    if isinstance(claimed.endpoint, Unreadable):
        await deps.outcomes.unreadable(claimed, claimed.endpoint, event.correlation_id)
        return
    later = await attempt(deps, claimed, claimed.endpoint, event.correlation_id)
    if later is not None:
        raise later


async def _send_here(
    deps: DeliveryDeps,
    claimed: claims.Claimed,
    endpoint: Endpoint,
    correlation_id: str,
    turn: Awaitable[Turn] | None,
) -> None:
    """An inline send: what the attempt decides next goes through the delivery
    queue's delay queues, as a queued delivery's would; the attempt just made
    counts unless it was only a rate-limit wait."""
    try:
        later = await attempt(deps, claimed, endpoint, correlation_id, turn)
        if later is None:
            return
        n = claimed.notification
        due = Due(
            id=claimed.id,
            notification_id=n.id,
            user_id=n.user_id,
            channel=endpoint.type,
            priority=n.priority,
        )
        queue = (
            catalog.DISPATCHER_URGENT if n.priority == "urgent" else catalog.DISPATCHER_DELIVERIES
        )
        spent = 0 if isinstance(later, Defer) else 1
        await deps.bus.publish_later(
            queue,
            due_event(due, correlation_id),
            after=later.after or 0.0,
            attempts=claimed.attempts + spent,
        )
    except asyncio.CancelledError:
        raise
    except BusUnavailable:
        # the row says when it is due (retry_at): the sweep republishes it
        log.warning("inline_retry_not_queued", delivery_id=str(claimed.id))
    except Exception:
        # the claim runs out and the sweep hands the delivery to the queue
        log.warning("inline_delivery_failed", channel=endpoint.type, exc_info=True)


async def attempt(
    deps: DeliveryDeps,
    claimed: claims.Claimed,
    endpoint: Endpoint,
    correlation_id: str,
    ahead: Awaitable[Turn] | None = None,
) -> Retry | Defer | None:
    """One attempt on a claimed delivery, its outcome recorded and announced; what
    should happen next, if anything. ``ahead``: the rate-limit reservation, when
    it was started earlier (``make_room``)."""
    n = claimed.notification
    turn = await deps.limiter.turn(endpoint, n.priority, ahead)
    if not turn.granted:
        async with deps.pool.acquire() as conn:
            await claims.postpone(conn, claimed.id, claimed.token, turn.wait)
        return Defer(turn.wait, "rate limited")
    if turn.wait > 0:
        await asyncio.sleep(turn.wait)
    result = await _send(deps.channels.get(endpoint.type), n, endpoint)
    made = claimed.attempts + 1
    final = result.outcome is Outcome.TRANSIENT and made >= deps.max_attempts
    retry_in = None if final else _retry_in(deps, made, result)
    notice = await deps.outcomes.record(
        claimed, endpoint, result, final=final, retry_in=retry_in, correlation_id=correlation_id
    )
    if notice is None:  # the claim was lost: whoever holds it now decides
        return None
    if notice:
        await publish_due(deps.bus, notice, correlation_id)
    if retry_in is not None:
        return Retry(f"{endpoint.type}: {result.detail}", after=retry_in)
    return None


def _retry_in(deps: DeliveryDeps, attempt: int, result: DeliveryResult) -> float | None:
    """The wait before a transient failure is tried again: the step of the retry
    schedule the bus picks for it (a Retry-After moves it to a longer one)."""
    if result.outcome is not Outcome.TRANSIENT:
        return None
    delays = deps.settings.delivery_retry_delays
    step = retry_step(attempt, delays, result.retry_after)
    return None if step is None else delays[step]


async def _send(
    channel: Channel | None, notification: Notification, endpoint: Endpoint
) -> DeliveryResult:
    if channel is None:
        return DeliveryResult.skipped(f"channel {endpoint.type!r} is not configured")
    try:
        return await channel.send(notification, endpoint)
    except Exception as exc:  # a channel's bug must not take the consumer down
        log.warning("channel_raised", channel=endpoint.type, exc_info=True)
        return DeliveryResult.transient(f"{type(exc).__name__}: {exc}")
