"""Match scoring: hard filters first, then a blend of vector similarity and skill
overlap, with the explanation a notification shows. Pure: no I/O, no clock (``now``
is passed in), unit-tested directly.

Rules, as a person would state them:

- **Location.** A seeker with no location is not filtered on place. A remote job
  passes any seeker who has not said ``remote_ok=False``. Otherwise the places must
  meet: the seeker's most specific place (the text before the first comma, usually
  the city) appears as whole words in the job's location, or the job's most
  specific place appears in the seeker's location. Case and extra spaces do not
  matter. "Berlin" meets "Berlin, Germany"; "Austin, TX" does not meet "Dallas, TX"
  (a shared region is not enough); a job located only in "Texas" meets a seeker in
  "Austin, Texas". A job with no location that is not remote is not excluded
  (nothing to judge on).
- **Salary.** The seeker's floor (desired salary) excludes a job whose *maximum*
  is below it; a job that states no maximum is judged by its minimum only if that
  is all it states; a job that states nothing passes.
- **Job type.** When the seeker lists job types, the job's must be one of them.
- **Title keywords.** When the seeker lists keywords, at least one must appear as
  whole words in the job title (they are alternatives: "nurse", "RN").
- **Age.** With ``max_age_days`` set, a job posted longer ago than that is excluded.
- **Minimum score.** Checked after scoring: :func:`below_min_score`.

Score = w_vector * vector + w_skills * overlap, weights normalised to sum to 1, so
the score lies in [0, 1] and the parts add up to it exactly.

- *vector* is the cosine similarity of the L2-normalised MiniLM vectors of résumé
  and job, clipped to [0, 1]. A cosine at or below zero means unrelated texts;
  mapping [-1, 1] linearly onto [0, 1] instead would give unrelated pairs about
  0.55 and make a minimum score meaningless.
- *overlap* is the share of the job's skills the seeker has, |seeker ∩ job| /
  max(|job|, 3): the question a seeker asks is "how much of what they ask for do
  I have?", and skills the seeker has beyond the job's do not count against them.
  A posting in which fewer than three skills were recognised counts as naming
  three: one or two are too little evidence, and with the plain share a posting
  whose only recognised skill is "english" gives everyone who writes English a
  full skill part (bench/match_quality.py ranked such postings into résumés' top
  five). When either side has no skills there is nothing to compare: the skill
  part is left out and the score is the vector part alone (weights
  renormalised), rather than penalising a job for a terse posting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

__all__ = [
    "MIN_JOB_SKILLS",
    "REASONS",
    "JobFacts",
    "Reason",
    "Scored",
    "Seeker",
    "Weights",
    "below_min_score",
    "min_similarity",
    "passes_filters",
    "score",
    "skill_overlap",
    "vector_part",
]

Reason = Literal["location", "salary", "job_type", "title", "age", "score"]
"""Why a job was not matched to a seeker; a small fixed set, fit for a metric label."""

REASONS: Final[tuple[Reason, ...]] = ("location", "salary", "job_type", "title", "age", "score")

MIN_JOB_SKILLS: Final = 3
"""A job is counted as naming at least this many skills (see the module doc)."""


@dataclass(frozen=True)
class JobFacts:
    """What scoring needs to know about a job."""

    job_id: str
    title: str
    company: str
    location: str | None
    remote: bool
    salary_min: float | None
    salary_max: float | None
    job_type: str
    posted_at: datetime
    skills: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Seeker:
    """A person looking for work, with their hard preferences.

    ``remote_ok``: True or None (not said) lets remote jobs through from anywhere;
    False means the seeker wants on-site work near ``location``. ``desired_salary``
    is the seeker's salary floor.
    """

    user_id: str
    location: str | None = None
    remote_ok: bool | None = None
    desired_salary: float | None = None
    job_types: frozenset[str] = frozenset()
    title_keywords: tuple[str, ...] = ()
    min_score: float = 0.0
    skills: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Weights:
    """Relative weights of the two score parts; normalised when used."""

    vector: float = 0.7
    skills: float = 0.3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.vector) and math.isfinite(self.skills)):
            raise ValueError("weights must be finite")
        if self.vector < 0 or self.skills < 0:
            raise ValueError("weights must not be negative")
        if self.vector + self.skills <= 0:
            raise ValueError("at least one weight must be positive")


@dataclass(frozen=True)
class Scored:
    """A score in [0, 1] with its explanation: ``parts`` add up to ``score``."""

    score: float
    parts: Mapping[str, float]
    matched_skills: tuple[str, ...] = ()
    missing_skills: tuple[str, ...] = field(default=())


# -- hard filters ------------------------------------------------------------------


def passes_filters(
    seeker: Seeker, job: JobFacts, *, now: datetime, max_age_days: float | None = None
) -> Reason | None:
    """None when the job may be matched to the seeker, else the first reason it may
    not (in the order location, salary, job type, title, age)."""
    if not _location_ok(seeker, job):
        return "location"
    if not _salary_ok(seeker.desired_salary, job):
        return "salary"
    if seeker.job_types and job.job_type not in seeker.job_types:
        return "job_type"
    if seeker.title_keywords and not any(
        _contains_phrase(job.title, k) for k in seeker.title_keywords if k.strip()
    ):
        return "title"
    if max_age_days is not None and job.posted_at < now - timedelta(days=max_age_days):
        return "age"
    return None


def below_min_score(seeker: Seeker, scored: Scored) -> Reason | None:
    """``"score"`` when the score is under the seeker's minimum, else None."""
    return "score" if scored.score < seeker.min_score else None


def _location_ok(seeker: Seeker, job: JobFacts) -> bool:
    wanted = _norm(seeker.location)
    if not wanted:
        return True
    if job.remote and seeker.remote_ok is not False:
        return True
    offered = _norm(job.location)
    if not offered:
        return not job.remote  # unknown on-site place: nothing to judge on
    return _contains_phrase(offered, _first_place(wanted)) or _contains_phrase(
        wanted, _first_place(offered)
    )


def _salary_ok(floor: float | None, job: JobFacts) -> bool:
    if floor is None:
        return True
    best = job.salary_max if job.salary_max is not None else job.salary_min
    return best is None or best >= floor


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _first_place(location: str) -> str:
    return location.split(",", 1)[0].strip()


def _contains_phrase(text: str, phrase: str) -> bool:
    phrase = _norm(phrase)
    if not phrase:
        return False
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", _norm(text)) is not None


# -- score ---------------------------------------------------------------------------


def vector_part(similarity: float) -> float:
    """Cosine similarity of normalised vectors, clipped to [0, 1] (see module doc)."""
    if math.isnan(similarity):
        return 0.0
    return min(1.0, max(0.0, similarity))


def skill_overlap(
    seeker_skills: Iterable[str], job_skills: Iterable[str]
) -> tuple[float, tuple[str, ...], tuple[str, ...]]:
    """(ratio, matched, missing): the share of the job's skills the seeker has (the
    job counted as naming at least :data:`MIN_JOB_SKILLS`), and which of the job's
    skills the seeker has and lacks, sorted. No job skills: ratio 0."""
    have = frozenset(seeker_skills)
    asked = frozenset(job_skills)
    matched = tuple(sorted(asked & have))
    missing = tuple(sorted(asked - have))
    if not asked:
        return 0.0, matched, missing
    return len(matched) / max(len(asked), MIN_JOB_SKILLS), matched, missing


def min_similarity(threshold: float, weights: Weights | None = None) -> float | None:
    """The lowest cosine similarity at which a pair can still score ``threshold``:
    the skill part adds at most its weight, and a pair without skills on both sides
    is scored on similarity alone (a higher bar). A search may leave out everything
    below it without losing a match. None when there is no such bound (the skill
    part alone can reach the threshold)."""
    weights = weights or Weights()
    total = weights.vector + weights.skills
    if weights.vector == 0:
        return None
    bound = (threshold - weights.skills / total) / (weights.vector / total)
    # a hair lower, so float rounding in score() never drops a pair at the bound
    return bound - 1e-6 if bound > 0 else None


def score(
    similarity: float,
    seeker: Seeker,
    job: JobFacts,
    weights: Weights | None = None,
) -> Scored:
    """The blended score of a job for a seeker, with its explanation."""
    weights = weights or Weights()
    vec = vector_part(similarity)
    ratio, matched, missing = skill_overlap(seeker.skills, job.skills)
    w_vec, w_sk = weights.vector, weights.skills
    if not seeker.skills or not job.skills or w_sk == 0:
        w_vec, w_sk = 1.0, 0.0  # nothing to compare: the similarity alone
    total = w_vec + w_sk
    parts = {"vector": w_vec / total * vec, "skills": w_sk / total * ratio}
    value = min(1.0, max(0.0, parts["vector"] + parts["skills"]))
    return Scored(value, parts, matched, missing)
