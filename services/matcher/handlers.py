"""The matcher's handlers: a job finds its people, a résumé finds its jobs, a saved
search re-runs on its tick; deletions remove rows and vectors.

Every announcement is decided and published inside one transaction: the match rows
commit only after the broker confirmed the ``match.found`` events, whose ids derive
from the match and its score, so a crash in between repeats an event the dispatcher
already knows rather than losing one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
import numpy as np
import structlog

from shared.bus import Bus
from shared.db import Connection
from shared.erasure import erased_since, forget_in_queues, lock_user, record_erasure
from shared.errors import Ignore, Retry
from shared.events import (
    AlertDeleted,
    AlertSaved,
    Event,
    JobClosed,
    JobPosted,
    JobSummary,
    MatchFound,
    ResumeDeleted,
    ResumeUpserted,
    Tick,
    UserDeleted,
    derived_id,
    new_event,
)
from shared.settings import Settings

from . import alerts, jobs, matches, resumes
from .embedding import Embedder
from .expiry import expire_jobs
from .index import VectorIndex
from .metrics import MatcherMetrics
from .scoring import (
    JobFacts,
    Scored,
    Seeker,
    Weights,
    min_similarity,
    passes_filters,
    score,
)
from .searching import JOBS, RESUMES, job_payload, jobs_near, resume_payload, seekers_near
from .skills import SkillExtractor

log = structlog.get_logger("herald.matcher")
SOURCE = "herald/matcher"


@dataclass(frozen=True)
class MatcherDeps:
    pool: asyncpg.Pool
    bus: Bus
    settings: Settings
    embedder: Embedder
    index: VectorIndex
    skills: SkillExtractor
    metrics: MatcherMetrics
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def weights(self) -> Weights:
        s = self.settings
        return Weights(vector=s.match_weight_vector, skills=s.match_weight_skills)

    @property
    def min_similarity(self) -> float | None:
        # candidates the index may leave out: none of them could reach the threshold
        return min_similarity(self.settings.match_threshold, self.weights)

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.settings.match_max_age_days)


def job_text(job: JobPosted) -> str:
    return f"{job.title}\n{job.company}\n{job.description}"


def resume_text(resume: ResumeUpserted) -> str:
    return f"{resume.title}\n{resume.text}" if resume.title else resume.text


def facts(job: JobPosted, skills: Sequence[str]) -> JobFacts:
    return JobFacts(
        job_id=job.job_id,
        title=job.title,
        company=job.company,
        location=job.location,
        remote=job.remote,
        salary_min=job.salary_min,
        salary_max=job.salary_max,
        job_type=job.job_type.value,
        posted_at=job.posted_at,
        skills=frozenset(skills),
    )


# -- jobs ---------------------------------------------------------------------------


async def on_job_posted(event: Event[JobPosted], deps: MatcherDeps) -> None:
    job = event.data
    skills = deps.skills.merge(deps.skills.extract(job_text(job)), job.skills)
    vector = (await deps.embedder.embed([job_text(job)]))[0]
    async with deps.pool.acquire() as conn:
        if not await jobs.upsert_job(conn, job, event.time, skills):
            log.info("job_unchanged", job_id=job.job_id, reason="an older event")
            return
        closed = await jobs.is_closed(conn, job.job_id)
        original = None if closed else await jobs.original_of(conn, job, within=deps.max_age)
    if closed or (job.expires_at is not None and job.expires_at <= deps.clock()):
        await deps.index.delete(JOBS, [job.job_id])
        return
    await deps.index.upsert(JOBS, [(job.job_id, vector, job_payload(job, skills, original))])
    job_facts = facts(job, sorted(skills))
    hits = await seekers_near(
        deps.index,
        vector,
        job,
        limit=deps.settings.match_candidates,
        min_similarity=deps.min_similarity,
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        await jobs.mark_indexed(conn, job.job_id, original)
        judge = _judge(deps, await resumes.min_scores(conn, [h.seeker.user_id for h in hits]))
        candidates = []
        for hit in hits:
            scored = judge(hit.similarity, hit.seeker, job_facts)
            if scored is not None:
                candidates.append((hit.seeker.user_id, scored))
        await _announce(
            conn,
            deps,
            [(user_id, job.job_id, scored) for user_id, scored in candidates],
            same_job={job.job_id: original} if original else None,
            correlation_id=event.correlation_id,
        )
    log.info(
        "job_matched",
        job_id=job.job_id,
        candidates=len(hits),
        matched=len(candidates),
        repost_of=original,
    )


async def on_job_closed(event: Event[JobClosed], deps: MatcherDeps) -> None:
    async with deps.pool.acquire() as conn:
        closed = await jobs.close_job(conn, event.data.job_id, event.time)
    if closed is None:
        # job.closed overtook its job.posted (both on this queue, handled at once)
        raise Retry(f"job {event.data.job_id!r} is not known yet")
    await deps.index.delete(JOBS, [event.data.job_id])
    log.info("job_closed", job_id=event.data.job_id, changed=closed)


# -- résumés ------------------------------------------------------------------------


async def on_resume_upserted(event: Event[ResumeUpserted], deps: MatcherDeps) -> None:
    resume = event.data
    skills = deps.skills.merge(deps.skills.extract(resume_text(resume)), resume.skills)
    vector = (await deps.embedder.embed([resume_text(resume)]))[0]
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, resume.user_id)
        if await erased_since(conn, resume.user_id, event.trusted_time):
            raise Ignore(f"user {resume.user_id!r} was erased after this résumé")
        if not await resumes.upsert_resume(conn, resume, skills, event.time):
            log.info("resume_unchanged", user_id=resume.user_id, reason="an older event")
            return
    await deps.index.upsert(RESUMES, [(resume.user_id, vector, resume_payload(resume, skills))])
    async with deps.pool.acquire() as conn:
        if await erased_since(conn, resume.user_id, event.trusted_time):
            # user.deleted ran between the row and the vector: its own removal of the
            # vector came first, so this one is left to remove
            await deps.index.delete(RESUMES, [resume.user_id])
            raise Ignore(f"user {resume.user_id!r} was erased after this résumé")
    now = deps.clock()
    seeker = Seeker(
        user_id=resume.user_id,
        location=resume.location,
        remote_ok=resume.remote_ok,
        desired_salary=resume.desired_salary,
        job_types=frozenset(t.value for t in resume.job_types),
        title_keywords=tuple(resume.title_keywords),
        skills=frozenset(skills),
    )
    hits = await jobs_near(
        deps.index,
        vector,
        seeker,
        posted_after=now - deps.max_age,
        limit=deps.settings.match_candidates,
        min_similarity=deps.min_similarity,
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        judge = _judge(deps, await resumes.min_scores(conn, [resume.user_id]))
        # a repost found beside its original is the same job twice: the original
        # goes; a repost alone (its original closed, or not close enough) goes unless
        # this seeker already has a match for the original (``_announce``)
        found_ids = {hit.job.job_id for hit in hits}
        reposts = {
            hit.job.job_id: hit.repost_of
            for hit in hits
            if hit.repost_of is not None and hit.repost_of not in found_ids
        }
        found = [
            (resume.user_id, hit.job.job_id, scored)
            for hit in hits
            if (hit.repost_of is None or hit.job.job_id in reposts)
            and (scored := judge(hit.similarity, seeker, hit.job)) is not None
        ]
        await _announce(
            conn, deps, found, same_job=reposts or None, correlation_id=event.correlation_id
        )
    log.info("resume_matched", user_id=resume.user_id, candidates=len(hits), matched=len(found))


async def on_resume_deleted(event: Event[ResumeDeleted], deps: MatcherDeps) -> None:
    await _forget(deps, event.data.user_id, alerts_too=False)


async def on_user_deleted(event: Event[UserDeleted], deps: MatcherDeps) -> None:
    await _forget(deps, event.data.user_id, alerts_too=True, erased_at=event.time)
    swept = await forget_in_queues(deps.pool, deps.bus, event.data.user_id)
    log.info("user_erased", user_id=event.data.user_id, messages_dropped=swept)


async def _forget(
    deps: MatcherDeps, user_id: str, *, alerts_too: bool, erased_at: datetime | None = None
) -> None:
    # the vector first: a crash after it leaves rows a redelivery removes
    await deps.index.delete(RESUMES, [user_id])
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, user_id)
        if erased_at is not None:
            await record_erasure(conn, user_id, erased_at)
        await resumes.delete_resume(conn, user_id)
        await matches.forget_user(conn, user_id)
        if alerts_too:
            await alerts.delete_for_user(conn, user_id)
    log.info("seeker_forgotten", user_id=user_id, alerts=alerts_too)


# -- alerts -------------------------------------------------------------------------


async def on_alert_saved(event: Event[AlertSaved], deps: MatcherDeps) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, event.data.user_id)
        if await erased_since(conn, event.data.user_id, event.trusted_time):
            raise Ignore(f"user {event.data.user_id!r} was erased after this alert")
        saved = await alerts.save(conn, event.data, event.time)
    log.info("alert_saved", alert_id=event.data.alert_id, changed=saved)


async def on_alert_deleted(event: Event[AlertDeleted], deps: MatcherDeps) -> None:
    async with deps.pool.acquire() as conn:
        await alerts.delete(conn, event.data.alert_id, event.data.user_id)


async def on_tick(event: Event[Tick], deps: MatcherDeps) -> None:
    schedule = event.data.schedule
    if schedule == "hourly":
        await expire_jobs(deps.pool, deps.bus, deps.index, deps.metrics, deps.clock())
        return
    frequency = "daily" if schedule == "daily" else "weekly"
    async with deps.pool.acquire() as conn:
        due = await alerts.due(conn, frequency)
    for alert in due:
        await run_alert(deps, alert, event.data.slot, event.correlation_id)


async def run_alert(
    deps: MatcherDeps, alert: alerts.Alert, slot: datetime, correlation_id: str
) -> int:
    """Announce the jobs new to ``alert``; how many."""
    since = alert.last_run_at or slot - (
        timedelta(days=1) if alert.frequency == "daily" else timedelta(days=7)
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        found = dict(
            await alerts.candidate_jobs(conn, alert, since, posted_after=slot - deps.max_age)
        )
        fresh = await alerts.record_hits(conn, alert.alert_id, list(found))
        similarity = await _similarities(deps, alert.query_text, {j: found[j] for j in fresh})
        await _publish(
            conn,
            deps,
            [
                matches.Announce(
                    matches.match_id(alert.user_id, job_id),
                    alert.user_id,
                    job_id,
                    round(max(0.0, min(1.0, similarity.get(job_id, 0.0))), 4),
                    "new_match",
                )
                for job_id in fresh
            ],
            {},
            correlation_id,
            reason="alert",
            id_parts=(alert.alert_id,),
        )
        await alerts.ran(conn, alert.alert_id, slot)
    log.info("alert_ran", alert_id=alert.alert_id, new_jobs=len(fresh))
    return len(fresh)


async def _similarities(deps: MatcherDeps, query: str, texts: dict[str, str]) -> dict[str, float]:
    """How close each job is to the alert's keywords (its match score)."""
    if not texts or not query:
        return dict.fromkeys(texts, 1.0)
    vectors = await deps.embedder.embed([query, *texts.values()])
    return {
        job_id: float(np.dot(vectors[0], v)) for job_id, v in zip(texts, vectors[1:], strict=True)
    }


# -- deciding and announcing ----------------------------------------------------------


def _judge(
    deps: MatcherDeps, floors: dict[str, float]
) -> Callable[[float, Seeker, JobFacts], Scored | None]:
    """Score a candidate pair, or None when a hard filter or a floor (the threshold,
    the seeker's own minimum in ``floors``) excludes it. The clock, the weights and
    the threshold are read once: a job judges up to 1,000 candidates."""
    now, weights, threshold = deps.clock(), deps.weights, deps.settings.match_threshold
    # a job posted longer ago than this is nobody's news (the résumé side's index
    # search already leaves such jobs out; a late job.posted is judged here)
    max_age_days = deps.settings.match_max_age_days

    def judged(similarity: float, seeker: Seeker, job: JobFacts) -> Scored | None:
        if passes_filters(seeker, job, now=now, max_age_days=max_age_days) is not None:
            return None
        scored = score(similarity, seeker, job, weights)
        floor = max(threshold, floors.get(seeker.user_id, 0.0))
        return scored if scored.score >= floor else None

    return judged


async def _announce(
    conn: Connection,
    deps: MatcherDeps,
    found: list[tuple[str, str, Scored]],
    *,
    correlation_id: str,
    same_job: dict[str, str] | None = None,
) -> None:
    explained = {(user_id, job_id): s for user_id, job_id, s in found}
    decided = await matches.decide(
        conn,
        [matches.Candidate(u, j, s.score) for u, j, s in found],
        improved_by=deps.settings.match_improved_by,
        same_job=same_job,
    )
    await _publish(conn, deps, decided, explained, correlation_id)


async def _publish(
    conn: Connection,
    deps: MatcherDeps,
    decided: list[matches.Announce],
    explained: dict[tuple[str, str], Scored],
    correlation_id: str,
    *,
    reason: Literal["alert"] | None = None,
    id_parts: tuple[str, ...] = (),
) -> None:
    if not decided:
        return
    # the job travels with its match: whoever words it needs no table of ours
    summaries = await jobs.summaries(conn, {a.job_id for a in decided}, deps.clock())
    # a generator: the bus writes the first events while the last are built
    await deps.bus.publish_many(
        _match_found(
            a,
            summaries[a.job_id],
            explained.get((a.user_id, a.job_id)),
            correlation_id,
            reason,
            id_parts,
        )
        for a in decided
    )
    for a in decided:  # counted once the broker has confirmed them all
        deps.metrics.announced(reason or a.reason, a.score)


def _match_found(
    a: matches.Announce,
    job: JobSummary,
    why: Scored | None,
    correlation_id: str,
    reason: Literal["alert"] | None,
    id_parts: tuple[str, ...],
) -> Event[MatchFound]:
    payload = MatchFound(
        match_id=a.match_id,
        user_id=a.user_id,
        job_id=a.job_id,
        score=a.score,
        score_parts=dict(why.parts) if why else {},
        matched_skills=sorted(why.matched_skills) if why else [],
        missing_skills=sorted(why.missing_skills) if why else [],
        reason=reason or a.reason,
        job=job,
    )
    return new_event(
        payload,
        source=SOURCE,
        # the same announcement always has the same id, so a repeat after a crash is
        # recognised downstream
        id=derived_id("match.found", a.match_id, payload.reason, f"{a.score:.4f}", *id_parts),
        subject=a.user_id,
        correlation_id=correlation_id,
    )
