"""The delivery stage: one ``delivery.due`` → one attempt on one endpoint.

A delivery is claimed (so a duplicate message waits instead of sending twice),
rate-limited (short waits sleep, long ones are deferred without spending an
attempt), sent, and its outcome recorded before ``notification.delivered`` or
``notification.failed`` is published and the message acked. Transient failures are
retried on the delivery schedule; the last one fails the delivery for good.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from shared import signing
from shared.batching import Coalesced
from shared.bus import Bus, retry_step
from shared.db import Connection
from shared.endpoints import Endpoint, Unreadable
from shared.errors import Defer, Retry
from shared.events import (
    DeliveryDue,
    Event,
    NotificationDelivered,
    NotificationFailed,
    Priority,
    UrgentDeliveryDue,
    derived_id,
    new_event,
)
from shared.sealing import Sealer
from shared.settings import Settings

from . import history
from .channels import Channel, DeliveryResult, Notification, Outcome
from .metrics import DispatcherMetrics
from .policy import EMAIL, INAPP
from .ratelimit import Limit, Turn, limits_for, reserve_many
from .recipients import reported

log = structlog.get_logger("herald.dispatcher")

SOURCE = "herald/dispatcher"
# Waits up to this long are slept through in place; longer ones give the consumer
# slot back and return through a delay queue.
MAX_INLINE_WAIT = 1.0
# a user may get a few notifications back to back before the spacing applies
RECIPIENT_BURST = 5


@dataclass(frozen=True)
class DeliveryDeps:
    pool: asyncpg.Pool
    bus: Bus
    channels: Mapping[str, Channel]
    settings: Settings
    metrics: DispatcherMetrics
    # opens endpoints' sealed URLs and secrets
    sealer: Sealer
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # round trips shared by the deliveries in flight: one statement reserves
    # rate-limit slots for many, one stores many outcomes, one pipelined write
    # announces many (their confirms awaited together)
    reserve: Coalesced[Mapping[str, Limit], Turn] = field(init=False)
    settle: Coalesced[history.Attempt, int | None] = field(init=False)
    announce: Coalesced[Event[Any], None] = field(init=False)

    def __post_init__(self) -> None:
        async def reserve(requests: list[Mapping[str, Limit]]) -> list[Turn]:
            async with self.pool.acquire() as conn:
                return await reserve_many(conn, requests, MAX_INLINE_WAIT)

        async def settle(attempts: list[history.Attempt]) -> list[int | None]:
            async with self.pool.acquire() as conn:
                return await history.record_attempts(conn, attempts)

        async def announce(events: list[Event[Any]]) -> list[None]:
            await self.bus.publish_many(events)
            return [None] * len(events)

        object.__setattr__(self, "reserve", Coalesced(reserve))
        object.__setattr__(self, "settle", Coalesced(settle))
        object.__setattr__(self, "announce", Coalesced(announce))

    @property
    def max_attempts(self) -> int:
        return len(self.settings.delivery_retry_delays) + 1

    @property
    def lease(self) -> float:
        # Longer than one send takes (a Telegram text split in parts makes several
        # calls); short, because a dispatcher killed mid-send holds its deliveries
        # until the lease runs out.
        return self.settings.http_timeout * 4 + 10


async def publish_due(bus: Bus, due: list[history.Due], correlation_id: str) -> None:
    """Hand deliveries to the delivery queue, each with its notification's priority."""
    await asyncio.gather(
        *(
            bus.publish(
                new_event(
                    (UrgentDeliveryDue if d.priority == "urgent" else DeliveryDue)(
                        delivery_id=str(d.id),
                        notification_id=str(d.notification_id),
                        user_id=d.user_id,
                        channel=d.channel,
                        priority=Priority(d.priority),
                    ),
                    source=SOURCE,
                    id=derived_id("delivery.due", str(d.id)),
                    subject=d.user_id,
                    correlation_id=correlation_id,
                )
            )
            for d in due
        )
    )


async def on_delivery_due(event: Event[DeliveryDue], deps: DeliveryDeps) -> None:
    delivery = uuid.UUID(event.data.delivery_id)
    async with deps.pool.acquire() as conn:
        claimed = await history.claim(conn, delivery, deps.lease, deps.sealer)
    if isinstance(claimed, history.Busy):
        if claimed.until is not None:
            wait = (claimed.until - deps.clock()).total_seconds()
            raise Defer(max(wait, 0.1), "another dispatcher holds this delivery")
        if claimed.finished is not None:
            # a duplicate message, or our announcement was lost after the outcome
            # was recorded: announce again (same event id, consumers keep one)
            f = claimed.finished
            await _announce(
                deps,
                delivery,
                f.notification_id,
                f.user_id,
                f.channel,
                f.status == "delivered",
                f.attempts,
                f.error or "",
                event.correlation_id,
            )
        return
    if claimed.endpoint is None:
        async with deps.pool.acquire() as conn:
            await history.mark(
                conn, delivery, claimed.token, "skipped", "endpoint removed or disabled"
            )
        return
    if isinstance(claimed.endpoint, Unreadable):
        await _unreadable(deps, claimed, claimed.endpoint, event.correlation_id)
        return
    later = await attempt(deps, claimed, claimed.endpoint, event.correlation_id)
    if later is not None:
        raise later


async def _unreadable(
    deps: DeliveryDeps, claimed: history.Claimed, endpoint: Unreadable, correlation_id: str
) -> None:
    """Fail the delivery for good, with the reason for the operator; the endpoint
    keeps its health (the keys are at fault, not the user's URL)."""
    reported(deps.metrics, deps.bus.service)(endpoint)
    async with deps.pool.acquire() as conn:
        await history.mark(conn, claimed.id, claimed.token, "failed", endpoint.reason)
    m = deps.metrics
    m.child(m.deliveries, deps.bus.service, endpoint.type, "failed").inc()
    n = claimed.notification
    await _announce(
        deps,
        claimed.id,
        n.id,
        n.user_id,
        endpoint.type,
        False,
        claimed.attempts,
        endpoint.reason,
        correlation_id,
    )


async def attempt(
    deps: DeliveryDeps,
    claimed: history.Claimed,
    endpoint: Endpoint,
    correlation_id: str,
    turn: Awaitable[Turn] | None = None,
) -> Retry | Defer | None:
    """One attempt on a claimed delivery, its outcome recorded and announced. What
    should happen next, if anything: a retry (a transient failure) or a wait that
    spends no attempt (a rate limit). ``turn``: the rate-limit reservation, when it
    was started earlier (``reserve_ahead``)."""
    delivery = claimed.id
    waited = await _wait_for_turn(claimed, endpoint, deps, turn)
    if waited is not None:
        return waited

    notification = claimed.notification
    if endpoint.type == EMAIL:
        notification = history.with_unsubscribe(
            notification, signing.unsubscribe_url(deps.settings, notification.user_id)
        )
    result = await _send(deps.channels.get(endpoint.type), notification, endpoint)
    final = result.outcome is Outcome.TRANSIENT and claimed.attempts + 1 >= deps.max_attempts
    retry_in = _retry_in(deps, claimed.attempts + 1, result) if not final else None
    health, notice = history.EndpointHealth(False, 0, None), []
    if result.outcome is Outcome.PERMANENT:
        async with deps.pool.acquire() as conn, conn.transaction():
            attempts = await history.record_attempt(
                conn, delivery, claimed.token, result, final=final, retry_in=retry_in
            )
            if attempts is not None:
                health = await history.endpoint_outcome(
                    conn, endpoint, result, deps.settings.disable_after_failures
                )
                if health.disabled_now:
                    notice = await _tell_owner(conn, endpoint, health)
    else:  # the common path: one statement, shared with the other deliveries in flight
        attempts = await deps.settle(
            history.Attempt(delivery, claimed.token, result, final, retry_in)
        )
    if attempts is None:
        log.warning("delivery_claim_lost", channel=endpoint.type, lease=deps.lease)
        return None
    _count(deps, endpoint, notification, result, final)
    if result.our_fault:
        log.error("herald_misconfigured", channel=endpoint.type, detail=result.detail)
    if health.disabled_now:
        deps.metrics.endpoints_disabled.labels(deps.bus.service, endpoint.type).inc()
        log.warning("endpoint_disabled", channel=endpoint.type, reason=health.reason)
    # the history has every attempt; the log keeps what needs a look at info
    log_attempt = log.debug if result.outcome is Outcome.DELIVERED else log.info
    log_attempt(
        "delivery_attempted",
        notification_id=str(notification.id),
        channel=endpoint.type,
        outcome="failed" if final else result.outcome.value,
        detail=result.detail,
        attempts=attempts,
    )
    if result.outcome is Outcome.DELIVERED or result.outcome is Outcome.PERMANENT or final:
        await _announce(
            deps,
            delivery,
            notification.id,
            notification.user_id,
            endpoint.type,
            result.outcome is Outcome.DELIVERED,
            attempts,
            result.detail,
            correlation_id,
        )
    if notice:
        await publish_due(deps.bus, notice, correlation_id)
    if result.outcome is Outcome.TRANSIENT and not final:
        return Retry(f"{endpoint.type}: {result.detail}", after=result.retry_after)
    return None


def _retry_in(deps: DeliveryDeps, attempt: int, result: DeliveryResult) -> float | None:
    """When the bus will bring a transient failure back (the same step it picks)."""
    if result.outcome is not Outcome.TRANSIENT:
        return None
    delays = deps.settings.delivery_retry_delays
    step = retry_step(attempt, delays, result.retry_after)
    return None if step is None else delays[step]


def reserve_ahead(
    deps: DeliveryDeps, notification: Notification, endpoint: Endpoint
) -> asyncio.Future[Turn] | None:
    """Start the rate-limit reservation for a send that will follow, so its round
    trip runs alongside whatever comes first (intake's record). None when nothing
    limits ``endpoint``. A reservation whose send never happens (the record found a
    duplicate, or failed) spends a slot of the recipient's budget for nothing:
    rare, and it only spaces their next message a little more."""
    limits = _limits(deps, notification, endpoint)
    if not limits:
        return None
    ahead = deps.reserve.submit(limits)
    # nobody may await it: its failure must not be reported as never retrieved
    ahead.add_done_callback(lambda f: f.cancelled() or f.exception())
    return ahead


def _limits(deps: DeliveryDeps, notification: Notification, endpoint: Endpoint) -> dict[str, Limit]:
    # urgent messages skip the per-recipient budget (and do not use it up); the
    # provider's own limits still hold
    recipient_limit = (
        None
        if notification.priority == "urgent"
        else Limit(deps.settings.recipient_rate_per_minute, 60.0, burst=RECIPIENT_BURST)
    )
    return limits_for(endpoint, recipient_limit)


async def _wait_for_turn(
    claimed: history.Claimed,
    endpoint: Endpoint,
    deps: DeliveryDeps,
    ahead: Awaitable[Turn] | None,
) -> Defer | None:
    """Sleep through a short rate-limit wait; a long one lets the claim go and
    comes back later (the Defer returned)."""
    if ahead is not None:
        turn = await ahead
    else:
        limits = _limits(deps, claimed.notification, endpoint)
        if not limits:
            return None
        turn = await deps.reserve(limits)
    if not turn.granted:
        async with deps.pool.acquire() as conn:
            await history.postpone(conn, claimed.id, claimed.token, turn.wait)
        return Defer(turn.wait, "rate limited")
    if turn.wait > 0:
        await asyncio.sleep(turn.wait)
    return None


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


def _count(
    deps: DeliveryDeps,
    endpoint: Endpoint,
    notification: Notification,
    result: DeliveryResult,
    final: bool,
) -> None:
    m, service = deps.metrics, deps.bus.service
    outcome = "failed" if final else result.outcome.value
    m.child(m.deliveries, service, endpoint.type, outcome).inc()
    if result.outcome is Outcome.DELIVERED:
        seconds = (deps.clock() - notification.created_at).total_seconds()
        m.child(m.latency, service, endpoint.type).observe(max(seconds, 0.0))


async def _announce(
    deps: DeliveryDeps,
    delivery: uuid.UUID,
    notification_id: uuid.UUID,
    user_id: str,
    channel: str,
    delivered: bool,
    attempts: int,
    error: str,
    correlation_id: str,
) -> None:
    payload: NotificationDelivered | NotificationFailed
    if delivered:
        payload = NotificationDelivered(
            notification_id=str(notification_id),
            user_id=user_id,
            channel=channel,
            attempts=attempts,
        )
    else:
        payload = NotificationFailed(
            notification_id=str(notification_id),
            user_id=user_id,
            channel=channel,
            attempts=attempts,
            error=error,
        )
    await deps.announce(
        new_event(
            payload,
            source=SOURCE,
            id=derived_id(payload.event_type, str(delivery)),
            subject=user_id,
            correlation_id=correlation_id,
        )
    )


async def _tell_owner(
    conn: Connection, endpoint: Endpoint, health: history.EndpointHealth
) -> list[history.Due]:
    """An in-app notice that one of the user's channels was turned off, and why."""
    inbox = await conn.fetchrow(
        """SELECT id, user_id, type, url, chat_id, secret, address FROM channel_endpoints
           WHERE user_id = $1 AND type = $2 AND enabled""",
        endpoint.user_id,
        INAPP,
    )
    if inbox is None or endpoint.type == INAPP:
        return []
    label = endpoint.type.capitalize() if endpoint.type != EMAIL else "E-mail"
    notification = Notification(
        id=uuid.UUID(derived_id("endpoint.disabled", str(endpoint.id), str(health.failures))),
        user_id=endpoint.user_id,
        type="channel_disabled",
        title=f"{label} notifications are turned off",
        body=(
            f"We stopped sending to your {label} channel because it kept failing: "
            f"{health.reason}. Fix it and add it again in your notification settings."
        ),
        priority="high",
        created_at=datetime.now(UTC),
        data={"endpoint_id": str(endpoint.id), "channel": endpoint.type},
    )
    plan: list[tuple[Endpoint, datetime | None]] = [(Endpoint(**dict(inbox)), None)]
    outcome = await history.record(
        conn,
        history.Draft(notification, "generic", subject=str(endpoint.id)),
        plan,
        dedup=None,
        source_event_id=str(notification.id),
        correlation_id=str(notification.id),
    )
    return history.due_now(notification, plan) if outcome == "created" else []
