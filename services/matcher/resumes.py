"""Résumés as the matcher keeps them (the text and what filtering and scoring need;
the vector is in the index), and the seekers they describe."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.db import Connection
from shared.events import ResumeUpserted


async def upsert_resume(
    conn: Connection, resume: ResumeUpserted, skills: Iterable[str], as_of: datetime
) -> bool:
    """Store a résumé; an event older than the stored row changes nothing. Whether
    the row changed."""
    changed = await conn.fetchval(
        """INSERT INTO resumes AS r (user_id, title, text, skills, location, remote_ok,
                                     desired_salary, as_of)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (user_id) DO UPDATE SET
               title = EXCLUDED.title, text = EXCLUDED.text, skills = EXCLUDED.skills,
               location = EXCLUDED.location, remote_ok = EXCLUDED.remote_ok,
               desired_salary = EXCLUDED.desired_salary, as_of = EXCLUDED.as_of,
               updated_at = now()
           WHERE r.as_of < EXCLUDED.as_of
           RETURNING true""",
        resume.user_id,
        resume.title,
        resume.text,
        sorted(skills),
        resume.location,
        resume.remote_ok,
        resume.desired_salary,
        as_of,
    )
    return bool(changed)


async def delete_resume(conn: Connection, user_id: str) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM resumes WHERE user_id = $1 RETURNING true", user_id)
    )


async def min_scores(conn: Connection, user_ids: list[str]) -> dict[str, float]:
    """Each user's minimum match score (their preference; absent: no minimum)."""
    rows = await conn.fetch(
        "SELECT user_id, min_match_score FROM preferences WHERE user_id = ANY($1::text[])",
        user_ids,
    )
    return {r["user_id"]: float(r["min_match_score"]) for r in rows}
