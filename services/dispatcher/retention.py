"""The dispatcher's retention, on each ``tick.daily``: what it wrote and no longer
needs goes, older than ``HERALD_RETENTION_DAYS``:

- notifications (with their deliveries and attachments, by cascade), except those
  still waiting to go out (held or pending);
- the marks of cancelled requests;
- jobs of its copy closed or expired that long ago, once no notification, digest
  item or application refers to them any more.

Deletions run in small batches, each its own transaction, so a first run over a
large backlog never holds long locks on the tables intake writes. A run that fails
half way is retried by the bus; what it removed stays removed.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from shared.db import delete_in_batches
from shared.events import Event, Tick

from .intake import IntakeDeps

log = structlog.get_logger("herald.dispatcher")


NOTIFICATIONS = """
    DELETE FROM notifications WHERE id IN (
        SELECT n.id FROM notifications n
        WHERE n.created_at < $1
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
                          AND d.status IN ('held', 'pending'))
        LIMIT $2)"""
CANCELLED_REQUESTS = """
    DELETE FROM cancelled_requests WHERE request_id IN (
        SELECT request_id FROM cancelled_requests WHERE cancelled_at < $1 LIMIT $2)"""
JOBS = """
    DELETE FROM dispatcher_jobs WHERE job_id IN (
        SELECT j.job_id FROM dispatcher_jobs j
        WHERE (j.closed_at < $1 OR j.expires_at < $1)
          AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.job_id = j.job_id)
          AND NOT EXISTS (SELECT 1 FROM digest_items i WHERE i.job_id = j.job_id)
          AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.job_id = j.job_id)
        LIMIT $2)"""

# what each count is labelled in herald_dispatcher_retention_removed_total, in the
# order they go (notifications first: they are what keeps a job)
PURGES = {
    "notifications": NOTIFICATIONS,
    "cancelled_requests": CANCELLED_REQUESTS,
    "jobs": JOBS,
}


async def on_daily_tick(event: Event[Tick], deps: IntakeDeps) -> None:
    cutoff = deps.clock() - timedelta(days=deps.settings.retention_days)
    removed = {}
    for what, statement in PURGES.items():
        removed[what] = count = await delete_in_batches(deps.pool, statement, cutoff)
        deps.metrics.retention.labels(deps.bus.service, what).inc(count)
    log.info("retention_done", **removed)
