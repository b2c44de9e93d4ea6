"""Dispatcher handlers: plain async functions, one per event type."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import structlog

from shared.bus import Bus
from shared.endpoints import enabled_endpoints
from shared.errors import Retry
from shared.events import (
    Event,
    NotificationDelivered,
    NotificationFailed,
    RequestNotification,
    UserDeleted,
    UserSignedUp,
    derived_id,
    new_event,
)

from . import history
from .channels import Channel, DeliveryResult, Notification, Outcome

log = structlog.get_logger("herald.dispatcher")

SOURCE = "herald/dispatcher"


@dataclass(frozen=True)
class DispatcherDeps:
    pool: asyncpg.Pool
    bus: Bus
    channels: Mapping[str, Channel]


async def on_user_signed_up(event: Event[UserSignedUp], deps: DispatcherDeps) -> None:
    user = event.data
    await deps.pool.execute(
        """INSERT INTO users (user_id, email, name, timezone, locale)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name,
               timezone = EXCLUDED.timezone, locale = EXCLUDED.locale, updated_at = now()""",
        user.user_id,
        user.email,
        user.name,
        user.timezone,
        user.locale,
    )
    log.info("user_recorded", user_id=user.user_id)


async def on_user_deleted(event: Event[UserDeleted], deps: DispatcherDeps) -> None:
    # Endpoints, notifications and deliveries go with the user (ON DELETE CASCADE).
    await deps.pool.execute("DELETE FROM users WHERE user_id = $1", event.data.user_id)
    log.info("user_erased", user_id=event.data.user_id)


async def on_notification_requested(
    event: Event[RequestNotification], deps: DispatcherDeps
) -> None:
    request = event.data
    draft = Notification(
        id=uuid.UUID(derived_id("notification", event.id)),
        user_id=request.user_id,
        type=request.type,
        title=request.title,
        body=request.body,
        priority=request.priority.value,
        created_at=event.time,
        data=request.data,
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await history.user_exists(conn, request.user_id):
            # user.signed_up travels on another queue and may simply not be here yet.
            raise Retry(f"user {request.user_id!r} is not known (no user.signed_up yet)")
        notification = await history.record_notification(
            conn, draft, source_event_id=event.id, correlation_id=event.correlation_id
        )
        endpoints = [
            e
            for e in await enabled_endpoints(conn, request.user_id)
            if request.channels is None or e.type in request.channels
        ]
        await history.plan_deliveries(conn, notification, endpoints)

    async with deps.pool.acquire() as conn:
        pending = await history.pending_deliveries(conn, notification.id)
    results = await asyncio.gather(
        *(_deliver(notification, d, deps, event.correlation_id) for d in pending)
    )
    waits = [r.retry_after or 0.0 for r in results if r.outcome is Outcome.TRANSIENT]
    if waits:
        raise Retry(
            f"{len(waits)} of {len(results)} deliveries failed transiently",
            after=max(waits) or None,
        )


async def _deliver(
    notification: Notification,
    delivery: history.PendingDelivery,
    deps: DispatcherDeps,
    correlation_id: str,
) -> DeliveryResult:
    channel = deps.channels.get(delivery.endpoint.type)
    if channel is None:
        result = DeliveryResult.skipped(f"channel {delivery.endpoint.type!r} is not configured")
    else:
        result = await channel.send(notification, delivery.endpoint)
    async with deps.pool.acquire() as conn:
        row = await history.record_attempt(conn, delivery.id, result)
    log.info(
        "delivery_attempted",
        notification_id=str(notification.id),
        channel=delivery.endpoint.type,
        outcome=result.outcome.value,
        detail=result.detail,
        attempts=row["attempts"],
    )
    if result.outcome is Outcome.DELIVERED:
        payload: NotificationDelivered = NotificationDelivered(
            notification_id=str(notification.id),
            user_id=notification.user_id,
            channel=delivery.endpoint.type,
            attempts=row["attempts"],
        )
    elif result.outcome is Outcome.PERMANENT:
        payload = NotificationFailed(
            notification_id=str(notification.id),
            user_id=notification.user_id,
            channel=delivery.endpoint.type,
            attempts=row["attempts"],
            error=result.detail,
        )
    else:
        return result
    await deps.bus.publish(
        new_event(
            payload,
            source=SOURCE,
            id=derived_id(payload.event_type, str(delivery.id)),
            subject=notification.user_id,
            correlation_id=correlation_id,
        )
    )
    return result
