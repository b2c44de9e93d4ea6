"""Which matches to announce: each (user, job) once, again only when its score rose.

A match's id derives from the user and the job, so the same pair always has the
same id whichever side found it. A job seen again under a new id (a repost) counts
as the job it reposts: whoever heard of the original does not hear of the repost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.db import Connection
from shared.events import derived_id

Reason = Literal["new_match", "score_improved"]


def match_id(user_id: str, job_id: str) -> str:
    return derived_id("match", user_id, job_id)


@dataclass(frozen=True)
class Candidate:
    user_id: str
    job_id: str
    score: float


@dataclass(frozen=True)
class Announce:
    match_id: str
    user_id: str
    job_id: str
    score: float
    reason: Reason


async def decide(
    conn: Connection,
    candidates: list[Candidate],
    *,
    improved_by: float,
    same_job: dict[str, str] | None = None,
) -> list[Announce]:
    """Record the candidates and return those to announce: a pair never announced
    before (nor its original, for a repost: ``same_job`` maps a job to the job it
    reposts), or one whose score rose by ``improved_by`` since it was last announced.
    Concurrent deciders agree: the row's lock decides who announces."""
    best: dict[tuple[str, str], Candidate] = {}
    for c in candidates:  # one row may be touched once per statement
        key = (c.user_id, c.job_id)
        if key not in best or c.score > best[key].score:
            best[key] = c
    candidates = list(best.values())
    if not candidates:
        return []
    ids = [match_id(c.user_id, c.job_id) for c in candidates]
    originals = same_job or {}
    # "improved" is decided inside the row update (under its lock), and marked with
    # this statement's now(): a concurrent decider sees the raised best score
    rows = await conn.fetch(
        """WITH c AS (
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::real[], $5::text[])
               AS c(match_id, user_id, job_id, score, original)),
           seen_original AS (
               SELECT c.match_id FROM c JOIN matches m
                 ON m.user_id = c.user_id AND m.job_id = c.original
               WHERE c.original IS NOT NULL)
           INSERT INTO matches AS m (match_id, user_id, job_id, score, best_score, reason)
           SELECT c.match_id, c.user_id, c.job_id, c.score, c.score, 'new_match'
           FROM c WHERE c.match_id NOT IN (SELECT match_id FROM seen_original)
           ON CONFLICT (match_id) DO UPDATE
               SET score = EXCLUDED.score, updated_at = now(),
                   best_score = GREATEST(m.best_score, CASE
                       WHEN EXCLUDED.score >= m.best_score + $6 THEN EXCLUDED.score
                       ELSE m.best_score END),
                   reason = CASE WHEN EXCLUDED.score >= m.best_score + $6
                                 THEN 'score_improved' ELSE m.reason END,
                   improved_at = CASE WHEN EXCLUDED.score >= m.best_score + $6
                                      THEN now() ELSE m.improved_at END
           RETURNING m.match_id, (xmax = 0) AS inserted, m.improved_at = now() AS improved""",
        ids,
        [c.user_id for c in candidates],
        [c.job_id for c in candidates],
        [c.score for c in candidates],
        [originals.get(c.job_id) for c in candidates],
        improved_by,
    )
    announce: dict[str, Reason] = {}
    for r in rows:
        if r["inserted"]:
            announce[r["match_id"]] = "new_match"
        elif r["improved"]:
            announce[r["match_id"]] = "score_improved"
    return [
        Announce(mid, c.user_id, c.job_id, c.score, announce[mid])
        for mid, c in zip(ids, candidates, strict=True)
        if mid in announce
    ]


async def forget_user(conn: Connection, user_id: str) -> None:
    await conn.execute("DELETE FROM matches WHERE user_id = $1", user_id)
