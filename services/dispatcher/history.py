"""The notification history: notifications, their deliveries, and their outcomes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from shared.db import Connection
from shared.endpoints import Endpoint

from .channels import DeliveryResult, Notification, Outcome, delivery_id


@dataclass(frozen=True)
class PendingDelivery:
    id: uuid.UUID
    endpoint: Endpoint
    attempts: int


async def user_exists(conn: Connection, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM users WHERE user_id = $1", user_id))


async def record_notification(
    conn: Connection,
    notification: Notification,
    *,
    source_event_id: str,
    correlation_id: str,
) -> Notification:
    """Insert once; a re-delivered request gets back the row written the first time."""
    row = await conn.fetchrow(
        """INSERT INTO notifications
               (id, user_id, type, title, body, data, priority, source_event_id,
                correlation_id, created_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)
           ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
           RETURNING created_at""",
        notification.id,
        notification.user_id,
        notification.type,
        notification.title,
        notification.body,
        json.dumps(notification.data),
        notification.priority,
        source_event_id,
        correlation_id,
        notification.created_at,
    )
    assert row is not None
    return Notification(**{**notification.__dict__, "created_at": row["created_at"]})


async def plan_deliveries(
    conn: Connection, notification: Notification, endpoints: list[Endpoint]
) -> None:
    await conn.executemany(
        """INSERT INTO deliveries (id, notification_id, endpoint_id, channel)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        [(delivery_id(notification.id, e.id), notification.id, e.id, e.type) for e in endpoints],
    )


async def pending_deliveries(conn: Connection, notification_id: uuid.UUID) -> list[PendingDelivery]:
    rows = await conn.fetch(
        """SELECT d.id, d.attempts, e.id AS endpoint_id, e.user_id, e.type, e.url,
                  e.chat_id, e.secret
           FROM deliveries d JOIN channel_endpoints e ON e.id = d.endpoint_id
           WHERE d.notification_id = $1 AND d.status = 'pending' AND e.enabled
           ORDER BY d.created_at""",
        notification_id,
    )
    return [
        PendingDelivery(
            r["id"],
            Endpoint(
                r["endpoint_id"], r["user_id"], r["type"], r["url"], r["chat_id"], r["secret"]
            ),
            r["attempts"],
        )
        for r in rows
    ]


_STATUS = {
    Outcome.DELIVERED: "delivered",
    Outcome.PERMANENT: "failed",
    Outcome.SKIPPED: "skipped",
    Outcome.TRANSIENT: "pending",
}


async def record_attempt(
    conn: Connection, delivery: uuid.UUID, result: DeliveryResult
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """UPDATE deliveries
           SET attempts = attempts + 1, status = $2, last_error = $3, response_status = $4,
               updated_at = now(),
               delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
           WHERE id = $1
           RETURNING attempts""",
        delivery,
        _STATUS[result.outcome],
        None if result.outcome is Outcome.DELIVERED else result.detail,
        result.status_code,
    )
    assert row is not None
    return dict(row)
