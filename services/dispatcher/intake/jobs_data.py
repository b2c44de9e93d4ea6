"""The dispatcher's copy of the jobs it words and judges (``dispatcher_jobs``).

Written here alone: from ``job.posted`` / ``job.updated`` (details, newest event
wins), ``job.closed`` / ``job.expired`` (closed for good: no later event reopens a
job), and the job each ``match.found`` carries (details only while no job event has
written them; closed when the matcher says it was). A job is open while it is not
closed and its ``expires_at``, if any, is still ahead: expiry is judged here from
the copy, at the moment it matters, not when ``job.expired`` arrives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.db import Connection
from shared.events import JobPosted, JobSummary, MatchFound

from ..content import JobItem

# what "open" means, for a row of dispatcher_jobs called j
OPEN = "(j.closed_at IS NULL AND (j.expires_at IS NULL OR j.expires_at > now()))"


async def remember_posted(conn: Connection | asyncpg.Pool, job: JobPosted, as_of: datetime) -> None:
    """A job posted or updated; an event older than what wrote the row changes nothing."""
    await conn.execute(
        """INSERT INTO dispatcher_jobs AS j (job_id, title, company, location, remote,
               salary_min, salary_max, currency, url, posted_at, expires_at, as_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (job_id) DO UPDATE SET
               title = EXCLUDED.title, company = EXCLUDED.company,
               location = EXCLUDED.location, remote = EXCLUDED.remote,
               salary_min = EXCLUDED.salary_min, salary_max = EXCLUDED.salary_max,
               currency = EXCLUDED.currency, url = EXCLUDED.url,
               posted_at = EXCLUDED.posted_at, expires_at = EXCLUDED.expires_at,
               as_of = EXCLUDED.as_of, updated_at = now()
           WHERE j.as_of IS NULL OR j.as_of <= EXCLUDED.as_of""",
        job.job_id,
        job.title,
        job.company,
        job.location,
        job.remote,
        job.salary_min,
        job.salary_max,
        job.currency,
        str(job.url),
        job.posted_at,
        job.expires_at,
        as_of,
    )


async def close(conn: Connection | asyncpg.Pool, job_id: str, at: datetime) -> None:
    """A job closed (or expired) at ``at``; one not known yet is remembered closed,
    so that its late ``job.posted`` or ``match.found`` finds it so."""
    await conn.execute(
        """INSERT INTO dispatcher_jobs AS j (job_id, closed_at) VALUES ($1, $2)
           ON CONFLICT (job_id) DO UPDATE SET closed_at = EXCLUDED.closed_at, updated_at = now()
           WHERE j.closed_at IS NULL""",
        job_id,
        at,
    )


async def from_match(conn: Connection, match: MatchFound, at: datetime) -> asyncpg.Record:
    """Remember the job ``match`` carries and read it back, with ``open``. Its details
    fill the row only while no job event has written them; its state closes the
    job (as of ``at``) but never reopens it."""
    j: JobSummary = match.job
    closed_at = at if j.state == "closed" else None
    row = await conn.fetchrow(
        f"""INSERT INTO dispatcher_jobs AS j (job_id, title, company, location, remote,
                salary_min, salary_max, currency, url, posted_at, expires_at, closed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (job_id) DO UPDATE SET
                title = CASE WHEN j.as_of IS NULL THEN EXCLUDED.title ELSE j.title END,
                company = CASE WHEN j.as_of IS NULL THEN EXCLUDED.company ELSE j.company END,
                location = CASE WHEN j.as_of IS NULL THEN EXCLUDED.location ELSE j.location END,
                remote = CASE WHEN j.as_of IS NULL THEN EXCLUDED.remote ELSE j.remote END,
                salary_min = CASE WHEN j.as_of IS NULL THEN EXCLUDED.salary_min
                                  ELSE j.salary_min END,
                salary_max = CASE WHEN j.as_of IS NULL THEN EXCLUDED.salary_max
                                  ELSE j.salary_max END,
                currency = CASE WHEN j.as_of IS NULL THEN EXCLUDED.currency ELSE j.currency END,
                url = CASE WHEN j.as_of IS NULL THEN EXCLUDED.url ELSE j.url END,
                posted_at = CASE WHEN j.as_of IS NULL THEN EXCLUDED.posted_at
                                 ELSE j.posted_at END,
                expires_at = CASE WHEN j.as_of IS NULL THEN EXCLUDED.expires_at
                                  ELSE j.expires_at END,
                closed_at = COALESCE(j.closed_at, EXCLUDED.closed_at), updated_at = now()
            RETURNING j.*, {OPEN} AS open""",
        match.job_id,
        j.title,
        j.company,
        j.location,
        j.remote,
        j.salary_min,
        j.salary_max,
        j.currency,
        str(j.url),
        j.posted_at,
        j.expires_at,
        closed_at,
    )
    assert row is not None
    return row


async def find(conn: Connection, job_id: str) -> asyncpg.Record | None:
    """The job's details, None when they are not known."""
    return await conn.fetchrow(
        "SELECT * FROM dispatcher_jobs WHERE job_id = $1 AND title IS NOT NULL", job_id
    )


def job_item(job: asyncpg.Record, match: dict[str, Any]) -> JobItem:
    """One job as a notification shows it, with what the matcher said (``match``:
    a ``match.found``'s data, as stored with a digest item)."""
    return JobItem(
        job_id=job["job_id"],
        title=job["title"],
        company=job["company"],
        location=job["location"],
        remote=job["remote"],
        salary_min=float(job["salary_min"]) if job["salary_min"] is not None else None,
        salary_max=float(job["salary_max"]) if job["salary_max"] is not None else None,
        currency=job["currency"],
        url=job["url"],
        score=float(match["score"]),
        matched_skills=tuple(match.get("matched_skills", ())),
        missing_skills=tuple(match.get("missing_skills", ())),
        score_parts=dict(match.get("score_parts", {})),
    )
