"""The job catalogue the matcher scores against."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from shared.db import Connection
from shared.events import JobPosted, JobSummary

# jobs closed on expiry per transaction: each batch's job.expired events are
# confirmed before its rows commit
EXPIRY_BATCH = 500


async def upsert_job(
    conn: Connection, job: JobPosted, as_of: datetime, skill_set: Iterable[str] = ()
) -> bool:
    """Store a posted or updated job; an event older than the stored row changes
    nothing (events on one queue can still arrive out of order after a retry), the
    same event again does (so a redelivery finishes what a crash interrupted).
    Returns whether the row was written."""
    changed = await conn.fetchval(
        """INSERT INTO jobs (job_id, title, company, description, location, remote,
                             salary_min, salary_max, currency, job_type, url, skills,
                             posted_at, expires_at, as_of, skill_set)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           ON CONFLICT (job_id) DO UPDATE SET
               title = EXCLUDED.title, company = EXCLUDED.company,
               description = EXCLUDED.description, location = EXCLUDED.location,
               remote = EXCLUDED.remote, salary_min = EXCLUDED.salary_min,
               salary_max = EXCLUDED.salary_max, currency = EXCLUDED.currency,
               job_type = EXCLUDED.job_type, url = EXCLUDED.url, skills = EXCLUDED.skills,
               posted_at = EXCLUDED.posted_at, expires_at = EXCLUDED.expires_at,
               as_of = EXCLUDED.as_of, skill_set = EXCLUDED.skill_set
           WHERE jobs.as_of <= EXCLUDED.as_of
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
        sorted(set(skill_set) | set(job.skills)),
    )
    return bool(changed)


async def is_closed(conn: Connection, job_id: str) -> bool:
    """Whether the job was closed (by ``job.closed`` or its expiry): for good, so a
    later ``job.updated`` writes its row but never puts it back in the index."""
    return bool(
        await conn.fetchval("SELECT closed_at IS NOT NULL FROM jobs WHERE job_id = $1", job_id)
    )


async def close_job(conn: Connection, job_id: str, as_of: datetime) -> bool | None:
    """Close a job: True if this closed it, False if it was closed already (or a
    newer event reopened it), None if the job is not known (yet)."""
    row = await conn.fetchrow(
        """WITH closed AS (
               UPDATE jobs SET closed_at = $2, as_of = $2
               WHERE job_id = $1 AND closed_at IS NULL AND as_of <= $2 RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM closed) AS closed,
                  EXISTS (SELECT 1 FROM jobs WHERE job_id = $1) AS known""",
        job_id,
        as_of,
    )
    assert row is not None
    return bool(row["closed"]) if row["known"] else None


async def close_expired(conn: Connection, now: datetime) -> list[tuple[str, datetime, bool]]:
    """Close up to ``EXPIRY_BATCH`` jobs whose ``expires_at`` has passed, as of that
    time, and mark them out of the index: (job, expiry, whether this closed it) of
    each. A job closed earlier (``job.closed``) but still marked indexed comes back
    too, unannounced, so that it leaves the index. Call inside the transaction that
    announces them; replicas skip each other's rows."""
    rows = await conn.fetch(
        """WITH due AS (
               SELECT job_id, closed_at IS NULL AS was_open FROM jobs
               WHERE expires_at <= $1 AND (closed_at IS NULL OR indexed_at IS NOT NULL)
               ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           UPDATE jobs j SET closed_at = coalesce(j.closed_at, j.expires_at), indexed_at = NULL
           FROM due WHERE j.job_id = due.job_id
           RETURNING j.job_id, j.expires_at, due.was_open""",
        now,
        EXPIRY_BATCH,
    )
    return [(r["job_id"], r["expires_at"], r["was_open"]) for r in rows]


async def summaries(
    conn: Connection, job_ids: Iterable[str], now: datetime
) -> dict[str, JobSummary]:
    """What ``match.found`` tells of each job, as its row stands: a job closed or
    past its expiry (not yet swept) is ``closed``."""
    rows = await conn.fetch(
        """SELECT job_id, title, company, location, remote, salary_min, salary_max, currency,
                  url, posted_at, expires_at,
                  closed_at IS NOT NULL OR coalesce(expires_at <= $2, false) AS closed
           FROM jobs WHERE job_id = ANY($1::text[])""",
        list(job_ids),
        now,
    )
    return {
        r["job_id"]: JobSummary(
            title=r["title"],
            company=r["company"],
            location=r["location"],
            remote=r["remote"],
            salary_min=r["salary_min"],
            salary_max=r["salary_max"],
            currency=r["currency"],
            url=r["url"],
            posted_at=r["posted_at"],
            expires_at=r["expires_at"],
            state="closed" if r["closed"] else "open",
        )
        for r in rows
    }


async def mark_indexed(conn: Connection, job_id: str, repost_of: str | None) -> None:
    await conn.execute(
        "UPDATE jobs SET indexed_at = now(), repost_of = $2 WHERE job_id = $1", job_id, repost_of
    )


async def original_of(
    conn: Connection, job: JobPosted, *, within: timedelta, threshold: float = 0.8
) -> str | None:
    """The job this one reposts, if any: a job of the same company, posted within
    ``within`` before it, with the same location and a near-identical title and text
    (word-shingle overlap at least ``threshold``). Open or not: a posting that
    expired or was closed and then put up again under a new id is the usual
    repost."""
    rows = await conn.fetch(
        """SELECT job_id, repost_of, title, description FROM jobs
           WHERE lower(company) = lower($1) AND job_id <> $2
             AND coalesce(lower(location), '') = coalesce(lower($3), '')
             AND posted_at BETWEEN $4::timestamptz - $5::interval AND $4::timestamptz
           ORDER BY posted_at""",
        job.company,
        job.job_id,
        job.location,
        job.posted_at,
        within,
    )
    title, text = _shingles(job.title, 1), _shingles(job.description, 3)
    for r in rows:
        if (
            _overlap(title, _shingles(r["title"], 1)) >= threshold
            and _overlap(text, _shingles(r["description"], 3)) >= threshold
        ):
            return str(r["repost_of"] or r["job_id"])
    return None


def _shingles(text: str, size: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def _overlap(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
