"""Jobs past their ``expires_at``: closed by the matcher, which owns ``jobs``, on
``tick.hourly``, and announced as ``job.expired`` to whoever keeps a copy of the job.

Each batch is closed, announced and taken out of the index in one transaction: the
rows commit only after the broker confirmed the events and the index let the jobs
go. A crash in between rolls the rows back, and the next tick closes the same jobs
under the same event ids (derived from the job and its expiry), which consumers
recognise.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import structlog

from shared.bus import Bus
from shared.events import Event, JobExpired, derived_id, new_event

from . import jobs
from .index import VectorIndex
from .metrics import MatcherMetrics
from .searching import JOBS

log = structlog.get_logger("herald.matcher")
SOURCE = "herald/matcher"


async def expire_jobs(
    pool: asyncpg.Pool, bus: Bus, index: VectorIndex, metrics: MatcherMetrics, now: datetime
) -> int:
    """Close every open job whose expiry is at or before ``now``; how many."""
    expired = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            batch = await jobs.close_expired(conn, now)
            events = [expired_event(job_id, at) for job_id, at, was_open in batch if was_open]
            await bus.publish_many(events)
            if batch:
                await index.delete(JOBS, [job_id for job_id, _, _ in batch])
        metrics.jobs_expired.labels(metrics.service).inc(len(events))
        expired += len(events)
        if len(batch) < jobs.EXPIRY_BATCH:
            break
    if expired:
        log.info("jobs_expired", count=expired)
    return expired


def expired_event(job_id: str, expires_at: datetime) -> Event[JobExpired]:
    return new_event(
        JobExpired(job_id=job_id, expires_at=expires_at),
        source=SOURCE,
        # the id the scheduler gave it when it closed expired jobs: one job expires once
        id=derived_id("job.expired", job_id, expires_at.isoformat()),
        subject=job_id,
        time=expires_at,
    )
