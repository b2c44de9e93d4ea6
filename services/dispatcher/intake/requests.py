"""Explicit requests: ``notification.requested`` (the hot path: what a product asks
to send) and ``notification.cancel_requested`` (a delayed one taken back)."""

from __future__ import annotations

import uuid

import structlog

from shared.events import CancelNotification, Event, RequestNotification, derived_id

from ..planning import Draft
from . import requests_data
from ._base import IntakeDeps, unknown

log = structlog.get_logger("herald.dispatcher")


async def on_notification_requested(event: Event[RequestNotification], deps: IntakeDeps) -> None:
    r = event.data
    # the hot path: no transaction, no connection of its own; the recipient is read
    # and everything recorded by statements shared with the other events in flight
    recipient = await deps.recipient(r.user_id)
    if recipient is None:
        async with deps.pool.acquire() as conn:
            await unknown(conn, r.user_id, event.trusted_time)
    link = r.data.get("url") if isinstance(r.data.get("url"), str) else None
    planned = await deps.notify(
        deps.record,
        Draft(
            event=event,
            recipient=recipient,
            kind="generic",
            type=r.type,
            dedup_key=r.dedup_key or r.type,
            context={"title": r.title, "body": r.body, "link": link},
            priority=r.priority.value,
            link=link,
            data=r.data,
            only=r.channels,
            endpoint_ids=r.endpoint_ids,
            deliver_at=r.deliver_at,
        ),
    )
    await deps.hand_over(planned, event.correlation_id)


async def on_notification_cancel_requested(
    event: Event[CancelNotification], deps: IntakeDeps
) -> None:
    """Drop what a delayed request still holds back. The cancellation is remembered,
    so deliveries recorded after it (the request retried behind its cancel) are
    dropped by the releaser when their time comes instead of going out."""
    c = event.data
    notification_id = uuid.UUID(derived_id("notification", c.request_id))
    async with deps.pool.acquire() as conn, conn.transaction():
        dropped = await requests_data.cancel(conn, c.request_id, c.user_id, notification_id)
    log.info("notification_cancelled", request_id=c.request_id, dropped=dropped)
