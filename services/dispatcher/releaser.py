"""Held deliveries (quiet hours, a requested send time) go out when their time comes.

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

from . import history
from .delivery import publish_due

log = structlog.get_logger("herald.dispatcher")

BATCH = 500


async def release_due(pool: asyncpg.Pool, bus: Bus) -> int:
    """Release one batch of held deliveries whose time has come; how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT d.id, d.notification_id, d.channel, d.priority, n.user_id,
                      n.correlation_id,
                      n.kind = 'job_match' AND NOT EXISTS (
                          SELECT 1 FROM jobs j WHERE j.job_id = n.job_id
                          AND j.closed_at IS NULL
                          AND (j.expires_at IS NULL OR j.expires_at > now())) AS stale
               FROM deliveries d JOIN notifications n ON n.id = d.notification_id
               WHERE d.status = 'held' AND d.not_before <= now()
               ORDER BY d.not_before LIMIT $1
               FOR UPDATE OF d SKIP LOCKED""",
            BATCH,
        )
        if not rows:
            return 0
        stale = [r["id"] for r in rows if r["stale"]]
        fresh = [r for r in rows if not r["stale"]]
        await asyncio.gather(
            *(
                publish_due(
                    bus,
                    [
                        history.Due(
                            r["id"], r["notification_id"], r["user_id"], r["channel"], r["priority"]
                        )
                    ],
                    r["correlation_id"] or str(r["notification_id"]),
                )
                for r in fresh
            )
        )
        await conn.execute(
            """UPDATE deliveries SET status = 'pending', not_before = NULL, updated_at = now()
               WHERE id = ANY($1::uuid[])""",
            [r["id"] for r in fresh],
        )
        # freshness at send time: a job closed or expired while the message waited
        await conn.execute(
            """UPDATE deliveries SET status = 'dropped', updated_at = now(),
                   last_error = 'the job closed or expired before this could be sent'
               WHERE id = ANY($1::uuid[])""",
            stale,
        )
    if stale:
        log.info("held_deliveries_dropped", count=len(stale), reason="job closed or expired")
    return len(rows)


async def run_releaser(pool: asyncpg.Pool, bus: Bus, interval: float = 0.5) -> None:
    """Poll for due held deliveries until cancelled; survive database and broker
    outages by trying again on the next round."""
    while True:
        try:
            while await release_due(pool, bus) == BATCH:
                pass
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, BusUnavailable) as exc:
            log.warning("release_failed", error=str(exc))
        except Exception:  # a bug must not stop releasing for good
            log.exception("release_crashed")
        await asyncio.sleep(interval)
