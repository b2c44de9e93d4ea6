"""Retention: old notifications, settled scheduler rows and old parked messages go;
jobs past their ``expires_at`` are closed.

Deletions run in small batches, each its own transaction, so a first run over a
large backlog never holds long locks on tables the dispatcher writes.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shared.db import Connection

BATCH = 1000


async def purge_notifications(pool: asyncpg.Pool, created_before: datetime) -> int:
    """Notifications (with their deliveries and attachments, by cascade) created
    before the cutoff; one still waiting to go out (held or pending) is kept."""
    return await _in_batches(
        pool,
        """DELETE FROM notifications WHERE id IN (
               SELECT n.id FROM notifications n
               WHERE n.created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
                                 AND d.status IN ('held', 'pending'))
               LIMIT $2)""",
        created_before,
    )


async def purge_settled(pool: asyncpg.Pool, settled_before: datetime) -> int:
    """The scheduler's own history: reminders sent, skipped or cancelled, meetings
    over or cancelled, requests' cancellation marks, and erasure tombstones, older
    than the cutoff."""
    removed = await _in_batches(
        pool,
        """DELETE FROM scheduled_reminders WHERE reminder_id IN (
               SELECT reminder_id FROM scheduled_reminders
               WHERE status <> 'pending' AND settled_at < $1 LIMIT $2)""",
        settled_before,
    )
    removed += await _in_batches(
        pool,
        """DELETE FROM scheduler_meetings WHERE meeting_id IN (
               SELECT meeting_id FROM scheduler_meetings
               WHERE state IN ('completed', 'cancelled') AND ends_at < $1 LIMIT $2)""",
        settled_before,
    )
    removed += await _in_batches(
        pool,
        """DELETE FROM cancelled_requests WHERE request_id IN (
               SELECT request_id FROM cancelled_requests WHERE cancelled_at < $1 LIMIT $2)""",
        settled_before,
    )
    # an erasure's tombstone only has to outlive the retries of events from before it
    # (hours); kept as long as notifications, then the user id goes too
    removed += await _in_batches(
        pool,
        """DELETE FROM erased_users WHERE user_id IN (
               SELECT user_id FROM erased_users WHERE erased_at < $1 LIMIT $2)""",
        settled_before,
    )
    return removed


async def close_expired_jobs(conn: Connection, now: datetime) -> list[tuple[str, datetime]]:
    """Close open jobs whose ``expires_at`` has passed, as of that time; (job, expiry)
    of each. Call inside the transaction that announces them."""
    rows = await conn.fetch(
        """UPDATE jobs SET closed_at = expires_at
           WHERE job_id IN (SELECT job_id FROM jobs
                            WHERE closed_at IS NULL AND expires_at <= $1
                            ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING job_id, expires_at""",
        now,
        BATCH,
    )
    return [(r["job_id"], r["expires_at"]) for r in rows]


async def _in_batches(pool: asyncpg.Pool, statement: str, cutoff: datetime) -> int:
    removed = 0
    while True:
        status = await pool.execute(statement, cutoff, BATCH)
        count = int(status.split()[-1])
        removed += count
        if count < BATCH:
            return removed
