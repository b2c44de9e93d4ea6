"""Held deliveries (quiet hours, a requested send time) go out when their time
comes (unless out of date: a job closed or expired since, judged from the
dispatcher's copy of the jobs; a meeting begun; or their request was cancelled),
and pending deliveries that were lost (their message, or the dispatcher holding
them) are sent again.

Every replica polls; ``FOR UPDATE SKIP LOCKED`` gives each held row to one of them.
The delivery messages are published (and confirmed) *before* the rows are marked
pending and committed: a crash in between sends a duplicate message, which the
delivery stage absorbs, never a lost one.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from shared.bus import Bus
from shared.errors import BusUnavailable

from .delivery import publish_due
from .history import Due
from .intake.jobs_data import OPEN

log = structlog.get_logger("herald.dispatcher")

BATCH = 500
# A pending delivery nobody has touched this long after it was due has lost its
# message (a publish that failed after a commit, a message parked by a database
# outage): publish it again. Generous, because a duplicate costs a claim check.
SWEEP_AFTER = 120.0
# A claim whose lease ran out is found on the next sweep: a dispatcher killed while
# sending (or before it sent what it recorded claimed) holds deliveries no longer
# than its lease and this.
SWEEP_EVERY = 5.0


async def release_due(pool: asyncpg.Pool, bus: Bus) -> int:
    """Release one batch of held deliveries whose time has come; how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT d.id, d.notification_id, d.channel, d.priority, n.user_id,
                      n.correlation_id,
                      (n.kind = 'job_match' AND NOT EXISTS (
                          SELECT 1 FROM dispatcher_jobs j WHERE j.job_id = n.job_id
                          AND {OPEN}))
                      OR (n.kind = 'meeting_reminder'
                          AND (n.data->>'starts_at')::timestamptz <= now()) AS stale,
                      EXISTS (SELECT 1 FROM cancelled_requests c
                              WHERE c.request_id = n.source_event_id
                                AND c.user_id = n.user_id) AS cancelled
               FROM deliveries d JOIN notifications n ON n.id = d.notification_id
               WHERE d.status = 'held' AND d.not_before <= now()
               ORDER BY d.not_before LIMIT $1
               FOR UPDATE OF d SKIP LOCKED""",
            BATCH,
        )
        if not rows:
            return 0
        stale = [r["id"] for r in rows if r["stale"] and not r["cancelled"]]
        cancelled = [r["id"] for r in rows if r["cancelled"]]
        fresh = [r for r in rows if not r["stale"] and not r["cancelled"]]
        await _publish(bus, fresh)
        await conn.execute(
            """UPDATE deliveries SET status = 'pending', not_before = NULL, updated_at = now()
               WHERE id = ANY($1::uuid[])""",
            [r["id"] for r in fresh],
        )
        # freshness at send time: a job closed or expired, a meeting began, while
        # the message waited
        await conn.execute(
            """UPDATE deliveries SET status = 'dropped', updated_at = now(),
                   last_error = 'out of date before it could be sent'
               WHERE id = ANY($1::uuid[])""",
            stale,
        )
        # a request cancelled after these were recorded (it arrived behind its cancel)
        await conn.execute(
            """UPDATE deliveries SET status = 'dropped', updated_at = now(),
                   last_error = 'cancelled'
               WHERE id = ANY($1::uuid[])""",
            cancelled,
        )
    if stale:
        log.info("held_deliveries_dropped", count=len(stale), reason="out of date")
    return len(rows)


async def sweep_lost(pool: asyncpg.Pool, bus: Bus, after: float = SWEEP_AFTER) -> int:
    """Publish again the pending deliveries that were lost: claimed by a dispatcher
    whose lease ran out (it died), or overdue by ``after`` seconds with nobody
    holding them (a lost message). How many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT d.id, d.notification_id, d.channel, d.priority, n.user_id,
                      n.correlation_id
               FROM deliveries d JOIN notifications n ON n.id = d.notification_id
               WHERE d.status = 'pending'
                 AND (d.claimed_until < clock_timestamp()
                      OR (d.claimed_until IS NULL
                          AND COALESCE(d.retry_at, d.updated_at)
                              < clock_timestamp() - make_interval(secs => $1)))
               ORDER BY COALESCE(d.retry_at, d.updated_at) LIMIT $2
               FOR UPDATE OF d SKIP LOCKED""",
            after,
            BATCH,
        )
        if not rows:
            return 0
        await _publish(bus, rows)
        # the dead holder's claim goes: the message just published may take it
        await conn.execute(
            """UPDATE deliveries SET retry_at = clock_timestamp(), claimed_until = NULL
               WHERE id = ANY($1::uuid[])""",
            [r["id"] for r in rows],
        )
    log.warning("lost_deliveries_republished", count=len(rows))
    return len(rows)


async def _publish(bus: Bus, rows: list[asyncpg.Record]) -> None:
    await asyncio.gather(
        *(
            publish_due(
                bus,
                [
                    Due(
                        id=r["id"],
                        notification_id=r["notification_id"],
                        user_id=r["user_id"],
                        channel=r["channel"],
                        priority=r["priority"],
                    )
                ],
                r["correlation_id"] or str(r["notification_id"]),
            )
            for r in rows
        )
    )


async def run_releaser(pool: asyncpg.Pool, bus: Bus, interval: float = 0.5) -> None:
    """Release held deliveries and sweep lost ones until cancelled; survive
    database and broker outages by trying again on the next round."""
    loop = asyncio.get_running_loop()
    next_sweep = loop.time() + SWEEP_EVERY
    while True:
        try:
            while await release_due(pool, bus) == BATCH:
                pass
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + SWEEP_EVERY
                while await sweep_lost(pool, bus) == BATCH:
                    pass
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, BusUnavailable) as exc:
            log.warning("release_failed", error=str(exc))
        except Exception:  # a bug must not stop releasing for good
            log.exception("release_crashed")
        await asyncio.sleep(interval)
