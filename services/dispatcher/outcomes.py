"""What becomes of an attempt: its outcome stored against the claim that made it,
the endpoint's health updated, counted, and announced (``notification.delivered`` /
``notification.failed``, ids derived from the delivery, so an announcement made
twice is kept once).

On the common path the round trips are shared by the deliveries in flight: one
statement stores many outcomes, one pipelined write announces many (their confirms
awaited together).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from shared.batching import Coalesced
from shared.bus import Bus
from shared.endpoints import Endpoint, Unreadable
from shared.events import Event, NotificationDelivered, NotificationFailed, derived_id, new_event

from . import claims, endpoint_health, history
from .channels import DeliveryResult, Notification, Outcome
from .metrics import DispatcherMetrics
from .recipients import reported

log = structlog.get_logger("herald.dispatcher")

SOURCE = "herald/dispatcher"


class Outcomes:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        metrics: DispatcherMetrics,
        *,
        disable_after: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._service = bus.service
        self._disable_after = disable_after
        self._clock = clock

        async def settle(attempts: list[claims.Attempt]) -> list[int | None]:
            async with pool.acquire() as conn:
                return await claims.record_attempts(conn, attempts)

        async def announce(events: list[Event[Any]]) -> list[None]:
            await bus.publish_many(events)
            return [None] * len(events)

        self._settle = Coalesced(settle)
        self._announce = Coalesced(announce)

    async def record(
        self,
        claimed: claims.Claimed,
        endpoint: Endpoint,
        result: DeliveryResult,
        *,
        final: bool,
        retry_in: float | None,
        correlation_id: str,
    ) -> list[history.Due] | None:
        """Store, count and announce one attempt's outcome; a transient failure on the
        ``final`` attempt fails the delivery. The owner's notice due when this
        disabled the endpoint; None when the claim was lost (another dispatcher took
        over after the lease ran out: its outcome stands)."""
        health, notice = endpoint_health.HEALTHY, []
        attempt = claims.Attempt(
            delivery=claimed.id,
            token=claimed.token,
            result=result,
            final=final,
            retry_in=retry_in,
        )
        if result.outcome is Outcome.PERMANENT:
            async with self._pool.acquire() as conn, conn.transaction():
                (attempts,) = await claims.record_attempts(conn, [attempt])
                if attempts is not None:
                    health = await endpoint_health.endpoint_outcome(
                        conn, endpoint, result, self._disable_after
                    )
                    if health.disabled_now:
                        notice = await endpoint_health.tell_owner(conn, endpoint, health)
        else:  # the common path: one statement, shared with the other deliveries in flight
            attempts = await self._settle(attempt)
        if attempts is None:
            log.warning("delivery_claim_lost", channel=endpoint.type)
            return None
        n = claimed.notification
        self._count(endpoint, n, result, final)
        if result.our_fault:
            log.error("herald_misconfigured", channel=endpoint.type, detail=result.detail)
        if health.disabled_now:
            self._metrics.endpoints_disabled.labels(self._service, endpoint.type).inc()
            log.warning("endpoint_disabled", channel=endpoint.type, reason=health.reason)
        # the history has every attempt; the log keeps what needs a look at info
        log_attempt = log.debug if result.outcome is Outcome.DELIVERED else log.info
        log_attempt(
            "delivery_attempted",
            notification_id=str(n.id),
            channel=endpoint.type,
            outcome="failed" if final else result.outcome.value,
            detail=result.detail,
            attempts=attempts,
        )
        if result.outcome in (Outcome.DELIVERED, Outcome.PERMANENT) or final:
            await self.announce(
                claims.Finished(
                    status="delivered" if result.outcome is Outcome.DELIVERED else "failed",
                    attempts=attempts,
                    error=result.detail,
                    notification_id=n.id,
                    user_id=n.user_id,
                    channel=endpoint.type,
                ),
                delivery=claimed.id,
                correlation_id=correlation_id,
            )
        return notice

    async def unreadable(
        self, claimed: claims.Claimed, endpoint: Unreadable, correlation_id: str
    ) -> None:
        """Fail the delivery for good, with the reason for the operator; the endpoint
        keeps its health (the keys are at fault, not the user's URL)."""
        reported(self._metrics, self._service)(endpoint)
        async with self._pool.acquire() as conn:
            await claims.mark(conn, claimed.id, claimed.token, "failed", endpoint.reason)
        m = self._metrics
        m.child(m.deliveries, self._service, endpoint.type, "failed").inc()
        n = claimed.notification
        await self.announce(
            claims.Finished(
                status="failed",
                attempts=claimed.attempts,
                error=endpoint.reason,
                notification_id=n.id,
                user_id=n.user_id,
                channel=endpoint.type,
            ),
            delivery=claimed.id,
            correlation_id=correlation_id,
        )

    async def announce(
        self, finished: claims.Finished, *, delivery: uuid.UUID, correlation_id: str
    ) -> None:
        """Publish a finished delivery's outcome (again, for a duplicate message or an
        announcement lost after the outcome was stored: consumers keep one)."""
        f = finished
        payload: NotificationDelivered | NotificationFailed
        if f.status == "delivered":
            payload = NotificationDelivered(
                notification_id=str(f.notification_id),
                user_id=f.user_id,
                channel=f.channel,
                attempts=f.attempts,
            )
        else:
            payload = NotificationFailed(
                notification_id=str(f.notification_id),
                user_id=f.user_id,
                channel=f.channel,
                attempts=f.attempts,
                error=f.error or "",
            )
        await self._announce(
            new_event(
                payload,
                source=SOURCE,
                id=derived_id(payload.event_type, str(delivery)),
                subject=f.user_id,
                correlation_id=correlation_id,
            )
        )

    def _count(
        self, endpoint: Endpoint, notification: Notification, result: DeliveryResult, final: bool
    ) -> None:
        m, service = self._metrics, self._service
        outcome = "failed" if final else result.outcome.value
        m.child(m.deliveries, service, endpoint.type, outcome).inc()
        if result.outcome is Outcome.DELIVERED:
            seconds = (self._clock() - notification.created_at).total_seconds()
            m.child(m.latency, service, endpoint.type).observe(max(seconds, 0.0))
