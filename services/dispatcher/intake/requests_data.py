"""What explicit requests keep: the cancellations of delayed ones."""

from __future__ import annotations

import uuid

from shared.db import Connection


async def cancel(
    conn: Connection, request_id: str, user_id: str, notification_id: uuid.UUID
) -> int:
    """Remember the cancellation and drop the request's held deliveries; how many."""
    await conn.execute(
        """INSERT INTO cancelled_requests (request_id, user_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING""",
        request_id,
        user_id,
    )
    dropped = await conn.fetchval(
        """WITH dropped AS (
               UPDATE deliveries d SET status = 'dropped', updated_at = now(),
                   last_error = 'cancelled', not_before = NULL
               FROM notifications n
               WHERE n.id = $1 AND n.user_id = $2 AND d.notification_id = n.id
                 AND d.status = 'held'
               RETURNING 1)
           SELECT count(*) FROM dropped""",
        notification_id,
        user_id,
    )
    return int(dropped)
