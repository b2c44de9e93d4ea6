"""What the dispatcher knows of jobs (its own copy, fed by events) and what it
forgets (its daily retention), against the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from shared.bus import Bus
from shared.events import JobClosed, JobUpdated, Tick
from tests.integration.conftest import Dispatcher, add_endpoint, publish, sign_up, until
from tests.integration.test_dispatcher import close_job, job_posted, match, request, set_prefs
from tests.receivers import Receiver
from tests.support import eventually

Start = Callable[..., Awaitable[Dispatcher]]


def consumed(d: Dispatcher, event_type: str) -> float:
    sample = {
        "service": "dispatcher",
        "queue": f"{d.bus.namespace}.dispatcher.jobs",
        "type": event_type,
        "outcome": "ok",
    }
    return d.bus.metrics.registry.get_sample_value("herald_events_consumed_total", sample) or 0.0


def suppressed(d: Dispatcher, reason_kind: str = "job_match") -> float:
    sample = {"service": "dispatcher", "kind": reason_kind, "outcome": "suppressed"}
    return d.bus.metrics.registry.get_sample_value("herald_notifications_total", sample) or 0.0


async def test_a_job_closed_after_matching_drops_its_match_held_by_quiet_hours(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool, timezone="Europe/Berlin")
    local = datetime.now(ZoneInfo("Europe/Berlin"))
    start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    await set_prefs(pool, user_id, quiet_hours_start=start, quiet_hours_end=end)
    job_id = f"{user_id}-job"
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        await publish(producer, match(user_id, job_id))
        held = """SELECT d.status FROM deliveries d JOIN notifications n
                  ON n.id = d.notification_id
                  WHERE n.user_id = $1 AND n.kind = 'job_match' AND d.channel = 'webhook'"""
        await until(pool, f"SELECT status = 'held' FROM ({held}) h", user_id, what="held")
        await close_job(producer, pool, job_id)
        # the quiet hours end: the releaser finds the job closed and drops the match
        await pool.execute(
            """UPDATE deliveries SET not_before = now() WHERE status = 'held'
               AND notification_id IN (SELECT id FROM notifications WHERE user_id = $1)""",
            user_id,
        )
        await until(pool, f"SELECT status = 'dropped' FROM ({held}) h", user_id, what="dropped")
        assert receiver.to("/hook") == []


async def test_a_match_arriving_after_its_job_closed_does_not_reopen_it(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """job.closed travels on the dispatcher's jobs queue, match.found on another: the
    close may be handled first, even before the dispatcher heard of the job."""
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    job_id = f"{user_id}-job"
    await close_job(producer, pool, job_id)
    before = suppressed(d)
    await publish(producer, match(user_id, job_id, state="open", title="Late Role"))
    await eventually(lambda: suppressed(d) == before + 1, what="the match suppressed")
    job = await pool.fetchrow("SELECT * FROM dispatcher_jobs WHERE job_id = $1", job_id)
    assert job["closed_at"] is not None
    assert job["title"] == "Late Role"  # the details the match brought are kept
    assert not await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'job_match'", user_id
    )
    # nor does a late job.updated
    await publish(producer, JobUpdated(**job_posted(job_id, title="Reposted").model_dump()))
    await until(
        pool,
        "SELECT title = 'Reposted' FROM dispatcher_jobs WHERE job_id = $1",
        job_id,
        what="the update kept",
    )
    assert await pool.fetchval(
        "SELECT closed_at IS NOT NULL FROM dispatcher_jobs WHERE job_id = $1", job_id
    )


async def test_a_match_the_matcher_saw_closed_is_not_announced(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    job_id = f"{user_id}-job"
    before = suppressed(d)
    await publish(producer, match(user_id, job_id, state="closed"))
    await eventually(lambda: suppressed(d) == before + 1, what="the match suppressed")
    assert await pool.fetchval(
        "SELECT closed_at IS NOT NULL FROM dispatcher_jobs WHERE job_id = $1", job_id
    )


async def test_the_copy_of_a_job_keeps_its_newest_details_and_its_closing(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    job_id = f"j-{uuid.uuid4().hex[:8]}"
    await publish(producer, job_posted(job_id, title="Night Nurse"))
    await until(
        pool,
        "SELECT title = 'Night Nurse' FROM dispatcher_jobs WHERE job_id = $1",
        job_id,
        what="the job copied",
    )
    # an older event changes nothing
    stale = job_posted(job_id, title="Old Title")
    await publish(producer, stale, time=datetime.now(UTC) - timedelta(hours=1))
    await eventually(lambda: consumed(d, "job.posted") == 2, what="both job.posted handled")
    await publish(producer, JobClosed(job_id=job_id))
    await until(
        pool,
        "SELECT closed_at IS NOT NULL FROM dispatcher_jobs WHERE job_id = $1",
        job_id,
        what="closed",
    )
    assert (
        await pool.fetchval("SELECT title FROM dispatcher_jobs WHERE job_id = $1", job_id)
        == "Night Nurse"
    )


async def test_the_daily_tick_purges_old_notifications_but_not_what_still_waits(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    for title in ("Old", "Old and held", "Recent"):
        await publish(producer, request(user_id, title=title))
    await until(
        pool,
        """SELECT count(DISTINCT n.id) = 4 AND bool_and(d.status NOT IN ('held', 'pending'))
           FROM notifications n JOIN deliveries d ON d.notification_id = n.id
           WHERE n.user_id = $1""",  # with the welcome
        user_id,
        what="recorded and sent",
    )
    long_ago = datetime.now(UTC) - timedelta(days=d.settings.retention_days + 1)
    await pool.execute(
        """UPDATE notifications SET created_at = $2
           WHERE user_id = $1 AND title IN ('Old', 'Old and held')""",
        user_id,
        long_ago,
    )
    await pool.execute(
        """UPDATE deliveries SET status = 'held', not_before = now() + interval '1 day'
           WHERE notification_id IN
               (SELECT id FROM notifications WHERE user_id = $1 AND title = 'Old and held')""",
        user_id,
    )
    old_job, kept_job = f"{user_id}-old", f"{user_id}-kept"
    await pool.execute(
        """INSERT INTO dispatcher_jobs (job_id, title, company, url, closed_at)
           VALUES ($1, 'Gone', 'Acme', 'https://jobs.example.com/1', $3),
                  ($2, 'Applied to', 'Acme', 'https://jobs.example.com/2', $3)""",
        old_job,
        kept_job,
        long_ago,
    )
    await pool.execute(
        """INSERT INTO applications (application_id, user_id, job_id, status, as_of)
           VALUES ($1, $2, $3, 'hired', now())""",
        f"a-{user_id}",
        user_id,
        kept_job,
    )
    await pool.execute(
        "INSERT INTO cancelled_requests (request_id, user_id, cancelled_at) VALUES ($1, $2, $3)",
        f"r-{user_id}",
        user_id,
        long_ago,
    )
    await publish(producer, Tick(schedule="daily", slot=datetime.now(UTC)))
    await until(
        pool,
        "SELECT NOT EXISTS (SELECT 1 FROM notifications WHERE user_id = $1 AND title = 'Old')",
        user_id,
        what="the old notification purged",
    )
    titles = {
        r["title"]
        for r in await pool.fetch("SELECT title FROM notifications WHERE user_id = $1", user_id)
    }
    assert {"Old and held", "Recent"} <= titles
    assert "Old" not in titles
    await until(
        pool,
        "SELECT NOT EXISTS (SELECT 1 FROM dispatcher_jobs WHERE job_id = $1)",
        old_job,
        what="the old job purged",
    )
    assert await pool.fetchval("SELECT true FROM dispatcher_jobs WHERE job_id = $1", kept_job)
    assert not await pool.fetchval(
        "SELECT true FROM cancelled_requests WHERE request_id = $1", f"r-{user_id}"
    )
    sample = {"service": "dispatcher", "what": "notifications"}
    registry = d.bus.metrics.registry
    await eventually(
        lambda: (
            (registry.get_sample_value("herald_dispatcher_retention_removed_total", sample) or 0)
            >= 1
        ),
        what="counted",
    )
