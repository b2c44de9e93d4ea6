"""The scheduler's rows: meetings with their states, the applications it follows, and
the reminders it owes (``scheduled_reminders``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from shared.db import Connection

from .reminders import Reminder

# -- meetings ---------------------------------------------------------------------


async def upsert_meeting(
    conn: Connection,
    *,
    meeting_id: str,
    user_id: str,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    join_url: str | None,
    cancelled: bool,
    as_of: datetime,
    now: datetime,
) -> bool:
    """Record a scheduled, moved or cancelled meeting; an event older than the row
    changes nothing. A meeting moved into the future is ``scheduled`` again (its
    start and end will be announced anew); one scheduled after a cancellation is
    back on. Whether the row was written."""
    written = await conn.fetchval(
        """INSERT INTO scheduler_meetings AS m
               (meeting_id, user_id, title, starts_at, ends_at, join_url, state, as_of)
           VALUES ($1, $2, $3, $4, $5, $6,
                   CASE WHEN $7 THEN 'cancelled' ELSE 'scheduled' END, $8)
           ON CONFLICT (meeting_id) DO UPDATE
           SET title = EXCLUDED.title, starts_at = EXCLUDED.starts_at,
               ends_at = EXCLUDED.ends_at, join_url = EXCLUDED.join_url,
               as_of = EXCLUDED.as_of, updated_at = now(),
               state = CASE
                   WHEN $7 THEN 'cancelled'
                   WHEN m.state = 'cancelled' OR EXCLUDED.starts_at > $9 THEN 'scheduled'
                   ELSE m.state END
           WHERE m.as_of < EXCLUDED.as_of
           RETURNING true""",
        meeting_id,
        user_id,
        title,
        starts_at,
        ends_at,
        join_url,
        cancelled,
        as_of,
        now,
    )
    return bool(written)


async def meetings_to_move(conn: Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Meetings whose start (scheduled) or end (active) has come, locked for the
    caller's transaction; skipped when another transaction holds them."""
    return await conn.fetch(
        """SELECT * FROM scheduler_meetings
           WHERE (state = 'scheduled' AND starts_at <= $1)
              OR (state = 'active' AND ends_at <= $1)
           ORDER BY LEAST(starts_at, ends_at) LIMIT $2
           FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )


async def set_meeting_state(conn: Connection, meeting_id: str, state: str) -> None:
    await conn.execute(
        "UPDATE scheduler_meetings SET state = $2, updated_at = now() WHERE meeting_id = $1",
        meeting_id,
        state,
    )


# -- applications -----------------------------------------------------------------


async def upsert_application(
    conn: Connection, application_id: str, user_id: str, status: str, as_of: datetime
) -> bool:
    """Whether this status change is the newest heard of (and was recorded)."""
    written = await conn.fetchval(
        """INSERT INTO scheduler_applications AS a (application_id, user_id, status, as_of)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (application_id) DO UPDATE
           SET status = EXCLUDED.status, as_of = EXCLUDED.as_of
           WHERE a.as_of < EXCLUDED.as_of
           RETURNING true""",
        application_id,
        user_id,
        status,
        as_of,
    )
    return bool(written)


# -- reminders --------------------------------------------------------------------


async def replan(
    conn: Connection, subject_type: str, subject_id: str, planned: Sequence[Reminder]
) -> None:
    """Make ``planned`` the subject's pending reminders: those pending and no longer
    planned are cancelled, new ones added (a known id is left as it is, sent or not)."""
    ids = [r.reminder_id for r in planned]
    await conn.execute(
        """UPDATE scheduled_reminders SET status = 'cancelled', settled_at = now()
           WHERE subject_type = $1 AND subject_id = $2 AND status = 'pending'
             AND reminder_id <> ALL($3::text[])""",
        subject_type,
        subject_id,
        ids,
    )
    if planned:
        await conn.executemany(
            """INSERT INTO scheduled_reminders
                   (reminder_id, user_id, kind, subject_type, subject_id, due_at, not_after)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (reminder_id) DO NOTHING""",
            [
                (r.reminder_id, r.user_id, r.kind, r.subject_type, r.subject_id, r.due_at,
                 r.not_after)
                for r in planned
            ],
        )  # fmt: skip


async def due_reminders(conn: Connection, now: datetime, limit: int) -> list[Reminder]:
    """Pending reminders whose time has come, locked for the caller's transaction."""
    rows = await conn.fetch(
        """SELECT reminder_id, user_id, kind, subject_type, subject_id, due_at, not_after
           FROM scheduled_reminders
           WHERE status = 'pending' AND due_at <= $1
           ORDER BY due_at LIMIT $2
           FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [Reminder(**dict(r)) for r in rows]


async def settle(conn: Connection, reminder_ids: Sequence[str], status: str) -> None:
    if reminder_ids:
        await conn.execute(
            """UPDATE scheduled_reminders SET status = $2, settled_at = now()
               WHERE reminder_id = ANY($1::text[]) AND status = 'pending'""",
            list(reminder_ids),
            status,
        )


async def erase_user(conn: Connection, user_id: str) -> None:
    for table in ("scheduled_reminders", "scheduler_meetings", "scheduler_applications"):
        await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
