"""Matcher handlers. Scoring and publishing matches arrive with the matching issue;
for now a job is stored so there is something to match against."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import structlog

from shared.events import Event, JobClosed, JobPosted

from . import jobs

log = structlog.get_logger("herald.matcher")


@dataclass(frozen=True)
class MatcherDeps:
    pool: asyncpg.Pool


async def on_job_posted(event: Event[JobPosted], deps: MatcherDeps) -> None:
    async with deps.pool.acquire() as conn:
        changed = await jobs.upsert_job(conn, event.data, event.time)
    log.info("job_stored", job_id=event.data.job_id, changed=changed)


async def on_job_closed(event: Event[JobClosed], deps: MatcherDeps) -> None:
    async with deps.pool.acquire() as conn:
        closed = await jobs.close_job(conn, event.data.job_id, event.time)
    log.info("job_closed", job_id=event.data.job_id, changed=closed)
