"""The job catalogue the matcher scores against."""

from __future__ import annotations

from datetime import datetime

from shared.db import Connection
from shared.events import JobPosted


async def upsert_job(conn: Connection, job: JobPosted, as_of: datetime) -> bool:
    """Store a posted or updated job; an event older than the stored row changes
    nothing (events on one queue can still arrive out of order after a retry).
    Returns whether the row changed."""
    changed = await conn.fetchval(
        """INSERT INTO jobs (job_id, title, company, description, location, remote,
                             salary_min, salary_max, currency, job_type, url, skills,
                             posted_at, expires_at, as_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (job_id) DO UPDATE SET
               title = EXCLUDED.title, company = EXCLUDED.company,
               description = EXCLUDED.description, location = EXCLUDED.location,
               remote = EXCLUDED.remote, salary_min = EXCLUDED.salary_min,
               salary_max = EXCLUDED.salary_max, currency = EXCLUDED.currency,
               job_type = EXCLUDED.job_type, url = EXCLUDED.url, skills = EXCLUDED.skills,
               posted_at = EXCLUDED.posted_at, expires_at = EXCLUDED.expires_at,
               as_of = EXCLUDED.as_of
           WHERE jobs.as_of < EXCLUDED.as_of
           RETURNING true""",
        job.job_id,
        job.title,
        job.company,
        job.description,
        job.location,
        job.remote,
        job.salary_min,
        job.salary_max,
        job.currency,
        job.job_type.value,
        str(job.url),
        job.skills,
        job.posted_at,
        job.expires_at,
        as_of,
    )
    return bool(changed)


async def close_job(conn: Connection, job_id: str, as_of: datetime) -> bool:
    closed = await conn.fetchval(
        """UPDATE jobs SET closed_at = $2, as_of = $2
           WHERE job_id = $1 AND closed_at IS NULL AND as_of <= $2 RETURNING true""",
        job_id,
        as_of,
    )
    return bool(closed)
