"""Saved searches ("job alerts"): kept from ``alert.saved``, re-run on their tick
over the jobs posted since their last run; a job is announced once per alert."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db import Connection
from shared.events import AlertSaved


@dataclass(frozen=True)
class Alert:
    alert_id: str
    user_id: str
    keywords: tuple[str, ...]
    location: str | None
    remote: bool | None
    salary_floor: float | None
    job_types: tuple[str, ...]
    frequency: str
    last_run_at: datetime | None

    @property
    def query_text(self) -> str:
        return " ".join(self.keywords)


async def save(conn: Connection, alert: AlertSaved, as_of: datetime) -> bool:
    changed = await conn.fetchval(
        """INSERT INTO alerts AS a (alert_id, user_id, keywords, location, remote,
                                    salary_floor, job_types, frequency, as_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (alert_id) DO UPDATE SET
               keywords = EXCLUDED.keywords, location = EXCLUDED.location,
               remote = EXCLUDED.remote, salary_floor = EXCLUDED.salary_floor,
               job_types = EXCLUDED.job_types, frequency = EXCLUDED.frequency,
               as_of = EXCLUDED.as_of
           WHERE a.as_of < EXCLUDED.as_of AND a.user_id = EXCLUDED.user_id
           RETURNING true""",
        alert.alert_id,
        alert.user_id,
        [k.strip() for k in alert.keywords if k.strip()],
        alert.location,
        alert.remote,
        alert.salary_floor,
        [t.value for t in alert.job_types],
        alert.frequency,
        as_of,
    )
    return bool(changed)


async def delete(conn: Connection, alert_id: str, user_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM alerts WHERE alert_id = $1 AND user_id = $2 RETURNING true",
            alert_id,
            user_id,
        )
    )


async def delete_for_user(conn: Connection, user_id: str) -> None:
    await conn.execute("DELETE FROM alerts WHERE user_id = $1", user_id)


async def due(conn: Connection, frequency: str) -> list[Alert]:
    rows = await conn.fetch(
        "SELECT * FROM alerts WHERE frequency = $1 ORDER BY alert_id", frequency
    )
    return [_alert(r) for r in rows]


def _alert(r: asyncpg.Record) -> Alert:
    return Alert(
        r["alert_id"],
        r["user_id"],
        tuple(r["keywords"]),
        r["location"],
        r["remote"],
        float(r["salary_floor"]) if r["salary_floor"] is not None else None,
        tuple(r["job_types"]),
        r["frequency"],
        r["last_run_at"],
    )


async def candidate_jobs(
    conn: Connection, alert: Alert, since: datetime, *, posted_after: datetime
) -> list[tuple[str, str]]:
    """Open jobs posted or first indexed since ``since`` (a job board may publish a
    posting hours after its ``posted_at``, after the alert's last run), posted after
    ``posted_after`` (the matcher's age limit), that pass the alert's filters and
    contain every keyword (title or description, whole words, any case), not yet
    announced by this alert (``alert_hits``). Reposts are left out: their original
    was a candidate. (job id, text) pairs."""
    rows = await conn.fetch(
        """SELECT j.job_id, j.title || ' ' || j.description AS text FROM jobs j
           WHERE j.closed_at IS NULL AND (j.expires_at IS NULL OR j.expires_at > now())
             AND j.repost_of IS NULL
             AND (j.posted_at >= $2 OR j.indexed_at >= $2) AND j.posted_at >= $7
             AND ($3::boolean IS NULL OR j.remote = $3)
             AND ($4::text IS NULL OR j.remote
                  OR strpos(lower(coalesce(j.location, '')), lower($4)) > 0)
             AND ($5::numeric IS NULL OR j.salary_max IS NULL OR j.salary_max >= $5)
             AND (cardinality($6::text[]) = 0 OR j.job_type = ANY($6))
             AND NOT EXISTS (SELECT 1 FROM alert_hits h
                             WHERE h.alert_id = $1 AND h.job_id = j.job_id)
           ORDER BY j.posted_at""",
        alert.alert_id,
        since,
        alert.remote,
        alert.location,
        alert.salary_floor,
        list(alert.job_types),
        posted_after,
    )
    wanted = [_word(k) for k in alert.keywords]
    return [(r["job_id"], r["text"]) for r in rows if all(w.search(r["text"]) for w in wanted)]


def _word(keyword: str) -> re.Pattern[str]:
    # whole words, also for keywords that end in a symbol ("c++", "c#")
    return re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", re.IGNORECASE)


async def record_hits(conn: Connection, alert_id: str, job_ids: list[str]) -> list[str]:
    """Mark jobs announced by the alert; the ones newly marked (a concurrent or
    repeated run marks nothing twice)."""
    rows = await conn.fetch(
        """INSERT INTO alert_hits (alert_id, job_id) SELECT $1, unnest($2::text[])
           ON CONFLICT DO NOTHING RETURNING job_id""",
        alert_id,
        job_ids,
    )
    return [r["job_id"] for r in rows]


async def ran(conn: Connection, alert_id: str, at: datetime) -> None:
    await conn.execute("UPDATE alerts SET last_run_at = $2 WHERE alert_id = $1", alert_id, at)
