"""The dispatcher's copies of applications and meetings, kept to word (and to stop)
reminders about them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shared.db import Connection
from shared.events import ApplicationStatusChanged, MeetingCancelled, MeetingScheduled

# Reminders about an application stop once it reaches one of these.
FINAL_STATUSES = frozenset({"withdrawn", "rejected", "hired"})


async def record_status(conn: Connection, a: ApplicationStatusChanged, as_of: datetime) -> bool:
    """Keep the application's status; False when a newer change is already kept."""
    return bool(
        await conn.fetchval(
            """INSERT INTO applications AS a (application_id, user_id, job_id, status, as_of)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (application_id) DO UPDATE
               SET status = EXCLUDED.status, as_of = EXCLUDED.as_of
               WHERE a.as_of <= EXCLUDED.as_of
               RETURNING true""",
            a.application_id,
            a.user_id,
            a.job_id,
            a.new_status.value,
            as_of,
        )
    )


async def application(conn: Connection, application_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT status, job_id FROM applications WHERE application_id = $1", application_id
    )


async def record_meeting(
    pool: asyncpg.Pool, m: MeetingScheduled | MeetingCancelled, as_of: datetime
) -> None:
    """Keep the meeting as its newest event says; every change counts up its
    ``sequence`` (the calendar invite's revision)."""
    await pool.execute(
        """INSERT INTO meetings AS m
               (meeting_id, user_id, title, starts_at, ends_at, join_url, cancelled, as_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (meeting_id) DO UPDATE
           SET title = EXCLUDED.title, starts_at = EXCLUDED.starts_at,
               ends_at = EXCLUDED.ends_at, join_url = EXCLUDED.join_url,
               cancelled = EXCLUDED.cancelled, as_of = EXCLUDED.as_of,
               sequence = m.sequence + 1
           WHERE m.as_of < EXCLUDED.as_of""",
        m.meeting_id,
        m.user_id,
        m.title,
        m.starts_at,
        m.ends_at,
        str(m.join_url) if m.join_url else None,
        isinstance(m, MeetingCancelled),
        as_of,
    )


async def meeting(conn: Connection, meeting_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM meetings WHERE meeting_id = $1", meeting_id)
