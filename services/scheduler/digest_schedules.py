"""``digest_schedules``: each daily or weekly user's next digest time and window start,
kept in step with ``preferences`` (frequency, hour, the zone the user chose) and
``users`` (the product's zone, for a user who chose none).

Preferences change without an event, so the scheduler compares them with the
schedules now and then (``sync``): only rows that differ come back from that query.
A user without a preferences row has the defaults: instant, so no digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.db import Connection

from .digests import DigestPlan, Frequency


@dataclass(frozen=True)
class Scheduled:
    user_id: str
    plan: DigestPlan
    next_at: datetime
    window_start: datetime


async def sync(conn: Connection, now: datetime, *, default_hour: int, weekday: int) -> int:
    """Add, change or drop schedules to match the users' wishes; how many changed."""
    dropped = await conn.fetch(
        """DELETE FROM digest_schedules s
           WHERE NOT EXISTS (SELECT 1 FROM preferences p
                             WHERE p.user_id = s.user_id
                               AND p.digest_frequency IN ('daily', 'weekly'))
           RETURNING user_id"""
    )
    rows = await conn.fetch(
        """SELECT u.user_id, p.digest_frequency AS frequency,
                  COALESCE(p.timezone, u.timezone) AS timezone,
                  COALESCE(p.digest_hour, $1)::int AS hour
           FROM users u
           JOIN preferences p USING (user_id)
           LEFT JOIN digest_schedules s USING (user_id)
           WHERE p.digest_frequency IN ('daily', 'weekly')
             AND (s.user_id IS NULL OR s.frequency <> p.digest_frequency
                  OR s.timezone <> COALESCE(p.timezone, u.timezone)
                  OR s.hour <> COALESCE(p.digest_hour, $1) OR s.weekday <> $2)""",
        default_hour,
        weekday,
    )
    changed = []
    for r in rows:
        plan = DigestPlan(r["frequency"], r["timezone"], r["hour"], weekday)
        next_at, window_start = plan.start(now)
        changed.append(
            (r["user_id"], plan.frequency, plan.timezone, plan.hour, weekday, next_at, window_start)
        )
    # a changed plan keeps its window start: nothing falls between two digests
    await conn.executemany(
        """INSERT INTO digest_schedules AS s
               (user_id, frequency, timezone, hour, weekday, next_at, window_start)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (user_id) DO UPDATE
           SET frequency = EXCLUDED.frequency, timezone = EXCLUDED.timezone,
               hour = EXCLUDED.hour, weekday = EXCLUDED.weekday, next_at = EXCLUDED.next_at""",
        changed,
    )
    return len(dropped) + len(changed)


async def due(conn: Connection, now: datetime, limit: int) -> list[Scheduled]:
    """Schedules whose digest is due, locked for the caller's transaction."""
    rows = await conn.fetch(
        """SELECT * FROM digest_schedules WHERE next_at <= $1
           ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [
        Scheduled(
            r["user_id"],
            DigestPlan(_frequency(r["frequency"]), r["timezone"], r["hour"], r["weekday"]),
            r["next_at"],
            r["window_start"],
        )
        for r in rows
    ]


async def advance(conn: Connection, moves: Sequence[tuple[str, datetime, datetime]]) -> None:
    """(user, new window start, next due time) for each digest sent."""
    await conn.executemany(
        "UPDATE digest_schedules SET window_start = $2, next_at = $3 WHERE user_id = $1",
        moves,
    )


def _frequency(value: str) -> Frequency:
    return "weekly" if value == "weekly" else "daily"
