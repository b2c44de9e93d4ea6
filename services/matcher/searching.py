"""What the matcher keeps in the vector index and how it looks there: one point per
open job and one per résumé, with the payload the hard filters need, and the two
searches (a job's nearest seekers, a résumé's nearest jobs).

The index narrows by what it can judge cheaply (where, how recent, salary); the
scoring module then applies every hard filter exactly, so a coarse index filter
never lets a wrong match through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shared.events import JobPosted, ResumeUpserted

from .index import AnyOf, Condition, IndexFilter, IsEmpty, Match, Range, VectorIndex
from .scoring import JobFacts, Seeker

JOBS = "jobs"
RESUMES = "resumes"
DIMENSIONS = 384


async def ensure_collections(index: VectorIndex) -> None:
    await index.ensure(
        JOBS,
        DIMENSIONS,
        indexes={"place": "keyword", "remote": "bool", "salary_max": "float", "posted_at": "float"},
    )
    await index.ensure(
        RESUMES,
        DIMENSIONS,
        indexes={
            "user_id": "keyword",
            "place": "keyword",
            "remote_ok": "bool",
            "desired_salary": "float",
        },
    )


def place(location: str | None) -> str | None:
    """The comparable part of a location: its first component, lower-cased
    ("Berlin, Germany" and "berlin" are one place)."""
    if not location:
        return None
    head = location.split(",")[0].strip().lower()
    return head or None


def job_payload(job: JobPosted, skills: Iterable[str], repost_of: str | None) -> dict[str, Any]:
    return {
        "repost_of": repost_of,
        "title": job.title,
        "company": job.company,
        "location": job.location,
        "place": place(job.location),
        "remote": job.remote,
        "salary_min": job.salary_min,
        "salary_max": job.salary_max,
        "job_type": job.job_type.value,
        "posted_at": job.posted_at.timestamp(),
        "skills": sorted(skills),
    }


def resume_payload(resume: ResumeUpserted, skills: Iterable[str]) -> dict[str, Any]:
    return {
        "user_id": resume.user_id,
        "location": resume.location,
        "place": place(resume.location),
        "remote_ok": resume.remote_ok,
        "desired_salary": resume.desired_salary,
        "job_types": [t.value for t in resume.job_types],
        "title_keywords": list(resume.title_keywords),
        "skills": sorted(skills),
    }


@dataclass(frozen=True)
class SeekerHit:
    similarity: float
    seeker: Seeker


@dataclass(frozen=True)
class JobHit:
    similarity: float
    job: JobFacts
    # the job this one reposts, if it is a repost
    repost_of: str | None


async def seekers_near(
    index: VectorIndex,
    vector: np.ndarray,
    job: JobPosted,
    *,
    limit: int,
    min_similarity: float | None = None,
) -> list[SeekerHit]:
    """The seekers closest to ``job`` who could take it: somewhere it is (or anywhere,
    for a remote job and a seeker open to remote work), asking no more than it pays;
    none less similar than ``min_similarity``."""
    where = place(job.location)
    here: list[Condition] = [IsEmpty("place")]
    if where:
        here.append(Match("place", where))
    if job.remote:
        here += [Match("remote_ok", True), IsEmpty("remote_ok")]
    # a job with no place that is not remote says nothing about where: anyone
    must: list[Condition] = [AnyOf(*here)] if where or job.remote else []
    pays = job.salary_max if job.salary_max is not None else job.salary_min
    if pays is not None:
        must.append(AnyOf(IsEmpty("desired_salary"), Range("desired_salary", lte=pays)))
    hits = await index.search(
        RESUMES,
        vector,
        filter=IndexFilter.all(*must),
        limit=limit,
        score_threshold=min_similarity,
    )
    return [SeekerHit(h.score, _seeker(h.payload)) for h in hits]


async def jobs_near(
    index: VectorIndex,
    vector: np.ndarray,
    seeker: Seeker,
    *,
    posted_after: datetime,
    limit: int,
    min_similarity: float | None = None,
) -> list[JobHit]:
    """The open jobs closest to ``seeker`` posted since ``posted_after`` that could be
    theirs: where they are, remote if they are open to it, paying their floor; none
    less similar than ``min_similarity``."""
    must: list[Condition] = [Range("posted_at", gte=posted_after.timestamp())]
    where = place(seeker.location)
    if where:
        here: list[Condition] = [Match("place", where), IsEmpty("place")]
        if seeker.remote_ok is not False:
            here.append(Match("remote", True))
        must.append(AnyOf(*here))
    if seeker.desired_salary is not None:
        must.append(AnyOf(IsEmpty("salary_max"), Range("salary_max", gte=seeker.desired_salary)))
    hits = await index.search(
        JOBS, vector, filter=IndexFilter.all(*must), limit=limit, score_threshold=min_similarity
    )
    return [
        JobHit(h.score, _job(h.id, h.payload), h.payload.get("repost_of") or None) for h in hits
    ]


def _seeker(payload: dict[str, Any]) -> Seeker:
    return Seeker(
        user_id=str(payload["user_id"]),
        location=payload.get("location"),
        remote_ok=payload.get("remote_ok"),
        desired_salary=payload.get("desired_salary"),
        # absent from résumés indexed before seekers could state them: no wish
        job_types=frozenset(payload.get("job_types") or ()),
        title_keywords=tuple(payload.get("title_keywords") or ()),
        skills=frozenset(payload.get("skills") or ()),
    )


def _job(job_id: str, payload: dict[str, Any]) -> JobFacts:
    return JobFacts(
        job_id=job_id,
        title=str(payload.get("title", "")),
        company=str(payload.get("company", "")),
        location=payload.get("location"),
        remote=bool(payload.get("remote")),
        salary_min=payload.get("salary_min"),
        salary_max=payload.get("salary_max"),
        job_type=str(payload.get("job_type", "")),
        posted_at=_when(float(payload["posted_at"])),
        skills=frozenset(payload.get("skills") or ()),
    )


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
