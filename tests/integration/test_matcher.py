"""The matcher in-process with the real model, the embedded index, the real broker
and database: a job reaches the right people and not the wrong ones, explanations
are right, deletions really delete, alerts fire once per job, reposts are not
announced twice, and a rising score is announced once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.matcher import model_files
from services.matcher.app import matcher_deps, subscribe
from services.matcher.handlers import MatcherDeps
from services.matcher.index import IndexFilter, Match
from services.matcher.searching import JOBS, RESUMES
from shared.bus import Bus
from shared.events import (
    AlertSaved,
    Event,
    JobClosed,
    JobExpired,
    JobPosted,
    JobType,
    MatchFound,
    Payload,
    ResumeDeleted,
    ResumeUpserted,
    Tick,
    UserDeleted,
    new_event,
)
from shared.runner import Runtime
from shared.settings import Settings
from tests.support import eventually, quiescent

PYTHON_CV = (
    "Backend engineer with seven years of Python, Django and PostgreSQL. Built REST APIs, "
    "asyncio services and data pipelines; Docker and Kubernetes in production; mentoring "
    "junior developers; on call for a payments platform."
)
NURSE_CV = (
    "Registered nurse with ten years on a surgical ward: patient assessment, wound care, "
    "medication administration, triage in the emergency department, electronic health "
    "records, teaching student nurses."
)
PYTHON_JOB = (
    "We are hiring a senior backend engineer to build our Python services: Django, "
    "PostgreSQL, REST APIs, asyncio, Docker and Kubernetes. You will design data "
    "pipelines, review code and mentor the team."
)


# one assembled model for every test (the embedder is cached per directory)
MODEL = model_files.assemble(model_files.default_model_dir(Path(__file__).parents[2] / "var"))


@dataclass
class Matcher:
    bus: Bus
    deps: MatcherDeps
    found: list[Event[MatchFound]]
    expired: list[Event[JobExpired]]

    async def send(self, data: Payload, *, at: datetime | None = None) -> Event[Any]:
        event = new_event(data, source="tests", time=at) if at else new_event(data, source="tests")
        await self.bus.publish(event)
        return event

    def matches_for(self, user_id: str) -> list[MatchFound]:
        return [e.data for e in self.found if e.data.user_id == user_id]


@pytest.fixture
async def matcher(
    settings: Settings, pool: asyncpg.Pool, bus_factory: Callable[..., Bus]
) -> AsyncIterator[Callable[..., Awaitable[Matcher]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Matcher:
            s = settings.model_copy(
                update={"match_threshold": 0.45, "embedding_model_dir": MODEL, **overrides}
            )
            bus = bus_factory("matcher")
            runtime = Runtime("matcher", s, bus.metrics, bus, pool)
            deps = await stack.enter_async_context(matcher_deps(runtime))
            subscribe(runtime, deps)
            found: list[Event[MatchFound]] = []
            expired: list[Event[JobExpired]] = []

            async def collect(event: Event[MatchFound]) -> None:
                found.append(event)

            async def collect_expired(event: Event[JobExpired]) -> None:
                expired.append(event)

            observer = bus_factory("observer")
            observer.subscribe("matches", {"match.found": collect, "job.expired": collect_expired})
            await observer.start(wait=10)
            await bus.start(wait=10)
            return Matcher(observer, deps, found, expired)

        yield start


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def job(**overrides: Any) -> JobPosted:
    values: dict[str, Any] = {
        "job_id": f"j-{uuid.uuid4().hex[:10]}",
        "title": "Senior Backend Engineer (Python)",
        # its own company each time: an identical posting of the same company is a repost
        "company": f"Acme Payments {uuid.uuid4().hex[:6]}",
        "description": PYTHON_JOB,
        "location": "Berlin",
        "remote": False,
        "salary_min": 70_000,
        "salary_max": 90_000,
        "currency": "EUR",
        "job_type": JobType.FULL_TIME,
        "url": "https://jobs.example.com/1",
        "posted_at": datetime.now(UTC) - timedelta(hours=1),
    }
    values.update(overrides)
    return JobPosted(**values)


def resume(user_id: str, text: str = PYTHON_CV, **overrides: Any) -> ResumeUpserted:
    return ResumeUpserted(user_id=user_id, text=text, **overrides)


async def test_a_job_reaches_the_right_people_and_not_the_wrong_ones(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    berlin, paris, remote_paris, nurse, expensive = user(), user(), user(), user(), user()
    seekers = [
        resume(berlin, location="Berlin", remote_ok=False, skills=["Go"]),
        resume(paris, location="Paris", remote_ok=False),
        resume(remote_paris, location="Paris", remote_ok=True),
        resume(nurse, NURSE_CV, location="Berlin"),
        resume(expensive, location="Berlin", desired_salary=150_000),
    ]
    for r in seekers:
        await m.send(r)
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 5 FROM resumes WHERE user_id = ANY($1)", [r.user_id for r in seekers]
        ),
        timeout=60,
        what="résumés stored",
    )
    onsite = job()
    await m.send(onsite)
    await eventually(lambda: bool(m.matches_for(berlin)), timeout=30, what="the Berlin match")
    await quiescent(m.deps.bus, m.bus)

    got = m.matches_for(berlin)
    assert len(got) == 1
    match = got[0]
    assert match.job_id == onsite.job_id
    assert match.reason == "new_match"
    # the explanation: its parts make the score, skills it saw on both sides
    assert abs(sum(match.score_parts.values()) - match.score) < 0.01
    assert "python" in match.matched_skills
    assert "django" in match.matched_skills
    assert "go" not in match.matched_skills
    # the job travels with the match: whoever words it needs nothing of the matcher's
    assert match.job.posted_at == onsite.posted_at
    assert match.job.model_dump(mode="json", exclude={"posted_at"}) == {
        "title": onsite.title,
        "company": onsite.company,
        "location": "Berlin",
        "remote": False,
        "salary_min": 70_000,
        "salary_max": 90_000,
        "currency": "EUR",
        "url": "https://jobs.example.com/1",
        "expires_at": None,
        "state": "open",
    }
    # on-site in Berlin: not for Paris (remote or not), not for the nurse, not for
    # someone whose salary floor is above the range
    for other in (paris, remote_paris, nurse, expensive):
        assert m.matches_for(other) == [], other

    # a remote job reaches the remote-friendly seeker in Paris too
    anywhere = job(remote=True, location=None, url="https://jobs.example.com/2")
    await m.send(anywhere)
    await eventually(lambda: bool(m.matches_for(remote_paris)), timeout=30, what="the remote match")
    assert m.matches_for(paris) == []


async def test_a_new_resume_finds_open_jobs_and_the_same_pair_keeps_its_match_id(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    open_job, closed_job = job(), job(url="https://jobs.example.com/3")
    for j in (open_job, closed_job):
        await m.send(j)
    await m.send(JobClosed(job_id=closed_job.job_id))
    await eventually(
        lambda: pool.fetchval(
            "SELECT closed_at IS NOT NULL FROM jobs WHERE job_id = $1", closed_job.job_id
        ),
        timeout=30,
        what="job closed",
    )
    seeker = user()
    await m.send(resume(seeker, location="Berlin"))
    await eventually(lambda: bool(m.matches_for(seeker)), timeout=30, what="a match")
    await quiescent(m.deps.bus, m.bus)
    assert [x.job_id for x in m.matches_for(seeker)] == [open_job.job_id]
    assert m.matches_for(seeker)[0].job.company == open_job.company
    assert m.matches_for(seeker)[0].job.state == "open"
    first_id = m.matches_for(seeker)[0].match_id

    # the same résumé again, a little richer: same pair, same id, nothing new to say
    await m.send(resume(seeker, PYTHON_CV + " Also FastAPI.", location="Berlin"))
    await eventually(
        lambda: pool.fetchval(
            "SELECT text LIKE '%FastAPI%' FROM resumes WHERE user_id = $1", seeker
        ),
        what="résumé updated",
    )
    await quiescent(m.deps.bus, m.bus)
    ids = {x.match_id for x in m.matches_for(seeker)}
    assert ids == {first_id}


async def test_a_rising_score_is_announced_once_as_score_improved(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher(match_improved_by=0.02, match_threshold=0.2)
    seeker = user()
    weak = "Backend developer. Some Python. Mostly PHP and WordPress sites for small shops."
    await m.send(resume(seeker, weak, location="Berlin"))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", seeker),
        what="résumé stored",
    )
    posted = job()
    await m.send(posted)
    await eventually(lambda: bool(m.matches_for(seeker)), timeout=30, what="first match")
    # a much closer résumé: the same pair scores higher
    await m.send(resume(seeker, PYTHON_CV, location="Berlin"))
    await eventually(lambda: len(m.matches_for(seeker)) == 2, timeout=30, what="the improvement")
    # and once more with the same text: nothing new
    await m.send(resume(seeker, PYTHON_CV + " ", location="Berlin"))
    await quiescent(m.deps.bus, m.bus)
    reasons = [x.reason for x in m.matches_for(seeker)]
    assert reasons == ["new_match", "score_improved"]
    assert len({x.match_id for x in m.matches_for(seeker)}) == 1
    assert m.matches_for(seeker)[1].score > m.matches_for(seeker)[0].score
    # counted as announced, by reason, with their scores
    registry = m.deps.bus.metrics.registry
    for reason in ("new_match", "score_improved"):
        sample = {"service": "matcher", "reason": reason}
        assert registry.get_sample_value("herald_matches_total", sample) == 1
    assert registry.get_sample_value("herald_match_score_count", {"service": "matcher"}) == 2


async def test_a_repost_under_a_new_id_is_not_announced_again(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    seeker = user()
    await m.send(resume(seeker, location="Berlin"))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", seeker),
        what="résumé stored",
    )
    original = job()
    await m.send(original)
    await eventually(lambda: bool(m.matches_for(seeker)), timeout=30, what="first match")
    repost = job(
        company=original.company,
        title="Senior Backend Engineer - Python",
        description=PYTHON_JOB + " Apply today!",
        url="https://jobs.example.com/again",
        posted_at=original.posted_at + timedelta(minutes=30),
    )
    await m.send(repost)
    await eventually(
        lambda: pool.fetchval("SELECT repost_of FROM jobs WHERE job_id = $1", repost.job_id),
        timeout=30,
        what="the repost recognised",
    )
    await quiescent(m.deps.bus, m.bus)
    assert [x.job_id for x in m.matches_for(seeker)] == [original.job_id]


async def test_a_closed_job_put_up_again_is_no_news_to_those_told_but_reaches_newcomers(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    told, newcomer = user(), user()
    await m.send(resume(told, location="Berlin"))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", told),
        what="résumé stored",
    )
    original = job()
    await m.send(original)
    await eventually(lambda: bool(m.matches_for(told)), timeout=30, what="first match")
    await m.send(JobClosed(job_id=original.job_id))
    await eventually(
        lambda: pool.fetchval(
            "SELECT closed_at IS NOT NULL FROM jobs WHERE job_id = $1", original.job_id
        ),
        what="the original closed",
    )
    # the posting expired on the board and was put up again under a new id
    repost = job(
        company=original.company,
        description=PYTHON_JOB + " Apply today!",
        url="https://jobs.example.com/again",
        posted_at=original.posted_at + timedelta(days=2),
    )
    await m.send(repost)
    await eventually(
        lambda: pool.fetchval("SELECT repost_of FROM jobs WHERE job_id = $1", repost.job_id),
        timeout=30,
        what="the repost recognised",
    )
    await m.send(resume(newcomer, location="Berlin"))
    await eventually(lambda: bool(m.matches_for(newcomer)), timeout=30, what="newcomer matched")
    await quiescent(m.deps.bus, m.bus)
    assert [x.job_id for x in m.matches_for(told)] == [original.job_id]
    assert [x.job_id for x in m.matches_for(newcomer)] == [repost.job_id]


async def test_a_job_posted_longer_ago_than_the_age_limit_reaches_nobody(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher(match_max_age_days=30)
    seeker = user()
    await m.send(resume(seeker, location="Berlin"))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", seeker),
        what="résumé stored",
    )
    stale = job(posted_at=datetime.now(UTC) - timedelta(days=45))
    fresh = job(posted_at=datetime.now(UTC) - timedelta(days=29))
    await m.send(stale)
    await m.send(fresh)
    await eventually(lambda: bool(m.matches_for(seeker)), timeout=30, what="the fresh job")
    await eventually(
        lambda: pool.fetchval(
            "SELECT indexed_at IS NOT NULL FROM jobs WHERE job_id = $1", stale.job_id
        ),
        timeout=30,
        what="the stale job handled",
    )
    await quiescent(m.deps.bus, m.bus)
    assert [x.job_id for x in m.matches_for(seeker)] == [fresh.job_id]


async def test_deleting_a_resume_or_user_removes_rows_and_vectors(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    gone, erased = user(), user()
    for u in (gone, erased):
        await m.send(resume(u, location="Berlin"))
    await m.send(
        AlertSaved(alert_id=f"a-{erased}", user_id=erased, keywords=["python"], frequency="daily")
    )
    await m.send(job())
    await eventually(
        lambda: len(m.matches_for(gone)) == 1 and len(m.matches_for(erased)) == 1,
        timeout=30,
        what="both matched",
    )
    index = m.deps.index
    assert await index.count(RESUMES) >= 2

    await m.send(ResumeDeleted(user_id=gone))
    await m.send(UserDeleted(user_id=erased))

    async def erased_everywhere() -> bool:
        rows = await pool.fetchval(
            """SELECT (SELECT count(*) FROM resumes WHERE user_id = ANY($1))
                    + (SELECT count(*) FROM matches WHERE user_id = ANY($1))
                    + (SELECT count(*) FROM alerts WHERE user_id = ANY($1))""",
            [gone, erased],
        )
        return bool(rows == 0)

    await eventually(erased_everywhere, timeout=30, what="rows erased")
    assert await index.count(RESUMES) == 0


async def test_a_resume_or_alert_from_before_an_erasure_does_not_bring_the_user_back(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    """A résumé update or saved alert published before user.deleted but handled
    after it (a retry, a lagging producer) is ignored; a sign-up afterwards is not."""
    m = await matcher()
    erased = user()
    before = datetime.now(UTC)
    await m.send(UserDeleted(user_id=erased), at=before + timedelta(seconds=1))
    await until_erased(pool, erased)
    await m.send(resume(erased, location="Berlin"), at=before)
    await m.send(
        AlertSaved(alert_id=f"a-{erased}", user_id=erased, keywords=["python"], frequency="daily"),
        at=before,
    )
    # a résumé from after the erasure is a new start: it is stored, so once it is,
    # the two older events (same queue, handled first) have had their turn
    later = user()
    await m.send(resume(later, location="Berlin"), at=before + timedelta(seconds=2))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", later),
        timeout=30,
        what="the later résumé",
    )
    assert await pool.fetchval("SELECT count(*) FROM resumes WHERE user_id = $1", erased) == 0
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE user_id = $1", erased) == 0
    assert await m.deps.index.count(RESUMES, IndexFilter.all(Match("user_id", erased))) == 0


async def test_a_future_dated_resume_from_before_an_erasure_does_not_slip_past_it(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    """A résumé claiming a time years ahead, handled after its user's erasure, is
    ignored like any other straggler: a wrong clock does not carry it past."""
    m = await matcher()
    erased = user()
    await m.send(UserDeleted(user_id=erased))
    await until_erased(pool, erased)
    await m.send(resume(erased, location="Berlin"), at=datetime.now(UTC) + timedelta(days=3650))
    later = user()
    await m.send(resume(later, location="Berlin"))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", later),
        timeout=30,
        what="the later résumé",
    )
    assert await pool.fetchval("SELECT count(*) FROM resumes WHERE user_id = $1", erased) == 0
    assert await m.deps.index.count(RESUMES, IndexFilter.all(Match("user_id", erased))) == 0


async def until_erased(pool: asyncpg.Pool, user_id: str) -> None:
    await eventually(
        lambda: pool.fetchval("SELECT true FROM erased_users WHERE user_id = $1", user_id),
        timeout=30,
        what="the erasure recorded",
    )


async def test_an_alert_fires_once_per_job(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    seeker = user()
    # the database is shared with other tests' jobs: a word only this test's use
    marker = f"zq{uuid.uuid4().hex[:8]}"
    alert = AlertSaved(
        alert_id=f"a-{seeker}",
        user_id=seeker,
        keywords=["python", "django", marker],
        location="Berlin",
        salary_floor=60_000,
        job_types=[JobType.FULL_TIME],
        frequency="daily",
    )
    await m.send(alert)
    text = f"{PYTHON_JOB} Team {marker}."
    wanted = job(description=text)
    wrong_type = job(description=text, job_type=JobType.INTERNSHIP)
    no_django = job(description=f"Python scripting for lab automation, {marker}.")
    for j in (wanted, wrong_type, no_django):
        await m.send(j)
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 3 FROM jobs WHERE job_id = ANY($1)",
            [wanted.job_id, wrong_type.job_id, no_django.job_id],
        ),
        timeout=30,
        what="jobs stored",
    )
    await eventually(
        lambda: pool.fetchval("SELECT true FROM alerts WHERE alert_id = $1", alert.alert_id),
        what="alert stored",
    )
    slot = datetime.now(UTC)
    await m.send(Tick(schedule="daily", slot=slot))
    alerted = lambda: [x for x in m.matches_for(seeker) if x.reason == "alert"]  # noqa: E731
    await eventually(lambda: bool(alerted()), timeout=30, what="the alert")
    # the next day's tick: nothing new
    await m.send(Tick(schedule="daily", slot=slot + timedelta(days=1)))
    await quiescent(m.deps.bus, m.bus)
    assert [x.job_id for x in alerted()] == [wanted.job_id]
    assert alerted()[0].job.title == wanted.title
    assert str(alerted()[0].job.url) == str(wanted.url)


async def test_an_alert_finds_a_job_published_after_its_run_and_announces_it_once(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    """A board may publish a posting hours after its ``posted_at``: after the alert's
    last run. It is still news to the alert, once, even when it is updated later."""
    m = await matcher()
    seeker = user()
    marker = f"zq{uuid.uuid4().hex[:8]}"
    alert = AlertSaved(
        alert_id=f"a-{seeker}", user_id=seeker, keywords=["python", marker], frequency="daily"
    )
    await m.send(alert)
    await eventually(
        lambda: pool.fetchval("SELECT true FROM alerts WHERE alert_id = $1", alert.alert_id),
        what="alert stored",
    )
    first_run = datetime.now(UTC) - timedelta(minutes=30)
    await m.send(Tick(schedule="daily", slot=first_run))
    await eventually(
        lambda: pool.fetchval(
            "SELECT last_run_at = $2 FROM alerts WHERE alert_id = $1", alert.alert_id, first_run
        ),
        what="the first run",
    )
    late = job(description=f"{PYTHON_JOB} Team {marker}.", posted_at=first_run - timedelta(hours=3))
    await m.send(late)
    await eventually(
        lambda: pool.fetchval(
            "SELECT indexed_at IS NOT NULL FROM jobs WHERE job_id = $1", late.job_id
        ),
        timeout=30,
        what="the late job stored",
    )
    alerted = lambda: [x for x in m.matches_for(seeker) if x.reason == "alert"]  # noqa: E731
    second_run = datetime.now(UTC)
    await m.send(Tick(schedule="daily", slot=second_run))
    await eventually(lambda: bool(alerted()), timeout=30, what="the alert")
    # an update indexes it again after the second run: still announced only once
    await m.send(late.model_copy(update={"title": "Senior Backend Engineer, Python"}))
    await eventually(
        lambda: pool.fetchval(
            "SELECT indexed_at > $2 FROM jobs WHERE job_id = $1", late.job_id, second_run
        ),
        timeout=30,
        what="the update indexed",
    )
    await m.send(Tick(schedule="daily", slot=second_run + timedelta(seconds=1)))
    await eventually(
        lambda: pool.fetchval(
            "SELECT last_run_at > $2 FROM alerts WHERE alert_id = $1", alert.alert_id, second_run
        ),
        what="the third run",
    )
    await quiescent(m.deps.bus, m.bus)
    assert [x.job_id for x in alerted()] == [late.job_id]


async def test_the_matcher_closes_expired_jobs_on_its_hourly_tick_and_announces_them(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    # expired jobs leave the index and stay out; closed ones too, but only an expiry
    # is announced (job.expired), once, for those who keep a copy of the job
    m = await matcher()
    expiring = job(expires_at=datetime.now(UTC) + timedelta(seconds=3))
    closed = job()
    for j in (expiring, closed):
        await m.send(j)
    index = m.deps.index
    in_index = lambda j: index.count(JOBS, IndexFilter.all(Match("company", j.company)))  # noqa: E731

    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 2 FROM jobs WHERE job_id = ANY($1) AND indexed_at IS NOT NULL",
            [expiring.job_id, closed.job_id],
        ),
        timeout=30,
        what="both indexed",
    )
    assert await in_index(expiring) == 1
    await m.send(JobClosed(job_id=closed.job_id))
    await eventually(lambda: _is(in_index(closed), 0), timeout=30, what="the closed job gone")
    # an update after the close writes the row but never puts the job back
    await m.send(closed.model_copy(update={"title": "Senior Backend Engineer (Python, Go)"}))
    await eventually(
        lambda: pool.fetchval(
            "SELECT title LIKE '%Go)' FROM jobs WHERE job_id = $1", closed.job_id
        ),
        timeout=30,
        what="the update written",
    )
    # a wait for a time, not for work: the hourly sweep takes only jobs already expired
    await asyncio.sleep(max(0.0, (expiring.expires_at - datetime.now(UTC)).total_seconds()))
    await m.send(Tick(schedule="hourly", slot=datetime.now(UTC)))
    await eventually(lambda: _is(in_index(expiring), 0), timeout=30, what="the expired job gone")
    assert await in_index(closed) == 0
    closed_at = await pool.fetchval("SELECT closed_at FROM jobs WHERE job_id = $1", expiring.job_id)
    assert closed_at == expiring.expires_at
    await eventually(
        lambda: any(e.data.job_id == expiring.job_id for e in m.expired),
        timeout=30,
        what="job.expired",
    )
    # the next hour has nothing more to say about either
    await m.send(Tick(schedule="hourly", slot=datetime.now(UTC) + timedelta(hours=1)))
    # and nobody new hears of either
    seeker = user()
    await m.send(resume(seeker, location="Berlin"))
    await eventually(
        lambda: pool.fetchval("SELECT true FROM resumes WHERE user_id = $1", seeker),
        what="résumé stored",
    )
    await quiescent(m.deps.bus, m.bus)
    assert not {x.job_id for x in m.matches_for(seeker)} & {expiring.job_id, closed.job_id}
    announced = [e for e in m.expired if e.data.job_id in {expiring.job_id, closed.job_id}]
    assert [(e.data.job_id, e.data.expires_at, e.time) for e in announced] == [
        (expiring.job_id, expiring.expires_at, expiring.expires_at)
    ]


async def _is(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


async def test_a_seeker_s_own_minimum_score_holds_them_back(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    keen, picky = user(), user()
    for u in (keen, picky):
        await pool.execute(
            "INSERT INTO users (user_id, email) VALUES ($1, $2)", u, f"{u}@example.com"
        )
    # the preference the gateway writes (/v1/me/preferences min_match_score)
    await pool.execute(
        "INSERT INTO preferences (user_id, min_match_score) VALUES ($1, 0.99)", picky
    )
    for u in (keen, picky):
        await m.send(resume(u, location="Berlin"))
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 2 FROM resumes WHERE user_id = ANY($1)", [keen, picky]
        ),
        what="résumés stored",
    )
    posted = job()
    await m.send(posted)
    await eventually(lambda: bool(m.matches_for(keen)), timeout=30, what="the keen seeker")
    await quiescent(m.deps.bus, m.bus)
    assert m.matches_for(keen)[0].score < 0.99
    assert m.matches_for(picky) == []


async def test_a_seeker_s_job_types_and_title_words_hold_both_ways(
    matcher: Callable[..., Awaitable[Matcher]], pool: asyncpg.Pool
) -> None:
    m = await matcher()
    open_to_all, contractor, wants_lead = user(), user(), user()
    seekers = [
        resume(open_to_all, location="Berlin"),
        resume(contractor, location="Berlin", job_types=[JobType.CONTRACT]),
        resume(wants_lead, location="Berlin", title_keywords=["lead", "staff engineer"]),
    ]
    for r in seekers:
        await m.send(r)
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 3 FROM resumes WHERE user_id = ANY($1)",
            [open_to_all, contractor, wants_lead],
        ),
        what="résumés stored",
    )
    # a job finds its people: the full-time "Senior" role is for neither of the two
    senior = job()
    await m.send(senior)
    await eventually(lambda: bool(m.matches_for(open_to_all)), timeout=30, what="a match")
    # a résumé finds its jobs: the contract lead role is for both, once they look again
    lead = job(title="Lead Backend Engineer (Python)", job_type=JobType.CONTRACT)
    await m.send(lead)
    await eventually(
        lambda: bool(m.matches_for(contractor)) and bool(m.matches_for(wants_lead)),
        timeout=30,
        what="the lead role",
    )
    late = user()
    await m.send(resume(late, location="Berlin", job_types=[JobType.CONTRACT]))
    await eventually(lambda: bool(m.matches_for(late)), timeout=30, what="the late seeker")
    await quiescent(m.deps.bus, m.bus)
    assert {x.job_id for x in m.matches_for(open_to_all)} == {senior.job_id, lead.job_id}
    assert [x.job_id for x in m.matches_for(contractor)] == [lead.job_id]
    assert [x.job_id for x in m.matches_for(wants_lead)] == [lead.job_id]
    assert [x.job_id for x in m.matches_for(late)] == [lead.job_id]
