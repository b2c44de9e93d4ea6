"""What digests gather: the matches held for them (``digest_items``), and the
counts of a window. Jobs are read from the dispatcher's copy (``jobs_data``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from shared.db import Connection
from shared.events import MatchFound

from .jobs_data import OPEN


async def hold(conn: Connection, match: MatchFound, data: dict[str, Any]) -> None:
    """Keep ``match`` for the user's next digest; a better score for the same job
    replaces it, and one already digested is held again."""
    await conn.execute(
        """INSERT INTO digest_items AS d (user_id, job_id, match_id, score, data)
           VALUES ($1, $2, $3, $4, $5::jsonb)
           ON CONFLICT (user_id, job_id) DO UPDATE
           SET score = GREATEST(d.score, EXCLUDED.score), data = EXCLUDED.data,
               digested_at = NULL
           WHERE EXCLUDED.score > d.score OR d.digested_at IS NOT NULL""",
        match.user_id,
        match.job_id,
        match.match_id,
        match.score,
        json.dumps(data),
    )


async def held(conn: Connection, user_id: str, before: datetime) -> list[asyncpg.Record]:
    """The user's matches held before ``before`` and not digested yet, locked, each
    with its job's details and whether it is still ``open`` now."""
    return await conn.fetch(
        f"""SELECT i.job_id, i.data, j.job_id IS NOT NULL AND {OPEN} AS open,
                   j.title, j.company, j.location, j.remote, j.salary_min, j.salary_max,
                   j.currency, j.url
            FROM digest_items i LEFT JOIN dispatcher_jobs j USING (job_id)
            WHERE i.user_id = $1 AND i.digested_at IS NULL AND i.created_at < $2
            FOR UPDATE OF i""",
        user_id,
        before,
    )


async def read_job_ids(conn: Connection, user_id: str) -> set[str]:
    """Jobs whose notification the user has read in-app."""
    rows = await conn.fetch(
        """SELECT job_id FROM notifications
           WHERE user_id = $1 AND job_id IS NOT NULL AND read_at IS NOT NULL""",
        user_id,
    )
    return {r["job_id"] for r in rows}


async def window_counts(
    conn: Connection, user_id: str, start: datetime, end: datetime
) -> asyncpg.Record:
    """What happened in the window: jobs posted, the user's matches, the user's
    application updates."""
    counts = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM dispatcher_jobs
                WHERE posted_at >= $2 AND posted_at < $3) AS jobs,
             (SELECT count(*) FROM digest_items WHERE user_id = $1
                AND created_at >= $2 AND created_at < $3) AS matches,
             (SELECT count(*) FROM notifications WHERE user_id = $1
                AND kind = 'application_status'
                AND created_at >= $2 AND created_at < $3) AS applications""",
        user_id,
        start,
        end,
    )
    assert counts is not None
    return counts


async def mark_digested(conn: Connection, user_id: str, before: datetime) -> None:
    await conn.execute(
        """UPDATE digest_items SET digested_at = now()
           WHERE user_id = $1 AND digested_at IS NULL AND created_at < $2""",
        user_id,
        before,
    )
