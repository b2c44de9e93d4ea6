"""The dispatcher as users meet it: real broker, database, HTTP receivers and outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import asyncpg
from standardwebhooks.webhooks import Webhook

from services.dispatcher.releaser import sweep_lost
from shared.bus import Bus
from shared.events import (
    ApplicationStatusChanged,
    DigestDue,
    JobClosed,
    JobPosted,
    JobSummary,
    MatchFound,
    MeetingScheduled,
    ReminderDue,
    RequestNotification,
    UserDeleted,
    UserSignedUp,
)
from tests.integration.conftest import (
    Dispatcher,
    add_endpoint,
    deliveries,
    publish,
    sign_up,
    until,
)
from tests.receivers import Receiver, Reply
from tests.support import eventually, quiescent, sending

Start = Callable[..., Awaitable[Dispatcher]]


def request(user_id: str, **fields: Any) -> RequestNotification:
    values: dict[str, Any] = {"type": "note", "title": "Hello", "body": "A body"} | fields
    return RequestNotification(user_id=user_id, **values)


def outbox(d: Dispatcher) -> list[EmailMessage]:
    folder = d.settings.outbox_dir
    if not folder.exists():
        return []
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


JOB: dict[str, Any] = {
    "title": "Backend Engineer",
    "company": "Acme",
    "location": "Berlin",
    "remote": True,
    "salary_min": 60000,
    "salary_max": 80000,
    "currency": "EUR",
}


def job_posted(job_id: str, **fields: Any) -> JobPosted:
    """A job as a board publishes it (the dispatcher keeps its own copy)."""
    values = JOB | {
        "job_id": job_id,
        "description": "Python and PostgreSQL",
        "job_type": "full_time",
        "url": f"https://jobs.example.com/{job_id}",
        "posted_at": datetime.now(UTC),
    }
    return JobPosted(**(values | fields))


def match(
    user_id: str,
    job_id: str,
    score: float = 0.9,
    reason: str = "new_match",
    **job: Any,
) -> MatchFound:
    """A match, with the job as the matcher held it (``job`` replaces its fields)."""
    summary = JOB | {"url": f"https://jobs.example.com/{job_id}", "posted_at": datetime.now(UTC)}
    return MatchFound(
        match_id=f"m-{user_id}-{job_id}",
        user_id=user_id,
        job_id=job_id,
        score=score,
        score_parts={"vector": score, "skills": 0.8},
        matched_skills=["Python", "PostgreSQL"],
        missing_skills=["Go"],
        reason=reason,  # type: ignore[arg-type]
        job=JobSummary(**(summary | job)),
    )


async def close_job(producer: Bus, pool: asyncpg.Pool, job_id: str) -> None:
    """The board closes the job; the dispatcher's copy knows when this returns."""
    await publish(producer, JobClosed(job_id=job_id))
    await until(
        pool,
        "SELECT closed_at IS NOT NULL FROM dispatcher_jobs WHERE job_id = $1",
        job_id,
        what="the job closed in the dispatcher's copy",
    )


async def set_prefs(pool: asyncpg.Pool, user_id: str, **values: Any) -> None:
    """As the gateway does it: the user's row, made if they have none yet."""
    columns = ", ".join(values)
    places = ", ".join(f"${i + 2}" for i in range(len(values)))
    assignments = ", ".join(f"{k} = EXCLUDED.{k}" for k in values)
    await pool.execute(
        f"""INSERT INTO preferences (user_id, {columns}) VALUES ($1, {places})
            ON CONFLICT (user_id) DO UPDATE SET {assignments}""",
        user_id,
        *values.values(),
    )


# -- erasure ---------------------------------------------------------------------


async def test_erasure_removes_the_user_and_stragglers_from_before_it_change_nothing(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    await publish(producer, request(user_id, title="Before"))
    await until(pool, "SELECT true FROM notifications WHERE user_id = $1", user_id, what="sent")
    erased_at = datetime.now(UTC)
    await publish(producer, UserDeleted(user_id=user_id), time=erased_at)
    await until(
        pool, "SELECT true FROM erased_users WHERE user_id = $1", user_id, what="the erasure"
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", user_id) == 0
    )
    welcomes = len(outbox(d))

    # a sign-up and a request published before the erasure, handled after it
    early = erased_at - timedelta(seconds=5)
    await publish(
        producer,
        UserSignedUp(user_id=user_id, email=f"{user_id}@example.com", name="Ghost"),
        time=early,
    )
    await publish(producer, request(user_id, title="Straggler"), time=early)
    await quiescent(d.bus, also=[sending(pool, user_id)])
    assert await pool.fetchval("SELECT count(*) FROM users WHERE user_id = $1", user_id) == 0
    assert (
        await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", user_id) == 0
    )
    assert len(outbox(d)) == welcomes
    # a sign-up after the erasure is a new start
    await publish(
        producer,
        UserSignedUp(user_id=user_id, email=f"{user_id}@example.com", name="Ada again"),
        time=erased_at + timedelta(seconds=1),
    )
    await until(pool, "SELECT name = 'Ada again' FROM users WHERE user_id = $1", user_id, what="it")
    await eventually(lambda: len(outbox(d)) == welcomes + 1, what="one new welcome")


async def test_a_future_dated_erasure_does_not_block_a_genuine_sign_up_after_it(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """A user.deleted whose producer's clock runs years ahead is recorded as of when
    it arrived: the user's genuine sign-up a moment later is not taken for a
    straggler from before the erasure."""
    await dispatcher()
    user_id = await sign_up(producer, pool)
    await publish(
        producer, UserDeleted(user_id=user_id), time=datetime.now(UTC) + timedelta(days=3650)
    )
    await until(
        pool, "SELECT true FROM erased_users WHERE user_id = $1", user_id, what="the erasure"
    )
    erased_at = await pool.fetchval(
        "SELECT erased_at FROM erased_users WHERE user_id = $1", user_id
    )
    assert erased_at <= datetime.now(UTC)
    await asyncio.sleep(0.01)
    await publish(
        producer,
        UserSignedUp(user_id=user_id, email=f"{user_id}@example.com", name="Ada again"),
        time=datetime.now(UTC),
    )
    await until(pool, "SELECT name = 'Ada again' FROM users WHERE user_id = $1", user_id, what="it")


async def test_a_future_dated_sign_up_from_before_an_erasure_does_not_slip_past_it(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """A sign-up claiming a time years ahead, handled after the user's erasure,
    cannot bring them back: its real time is unknown, so it counts as older."""
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    await publish(producer, UserDeleted(user_id=user_id))
    await until(
        pool, "SELECT true FROM erased_users WHERE user_id = $1", user_id, what="the erasure"
    )
    await publish(
        producer,
        UserSignedUp(user_id=user_id, email=f"{user_id}@example.com", name="Ghost"),
        time=datetime.now(UTC) + timedelta(days=3650),
    )
    await quiescent(d.bus)
    assert await pool.fetchval("SELECT count(*) FROM users WHERE user_id = $1", user_id) == 0


# -- welcome, e-mail and the inbox ------------------------------------------------


async def test_sign_up_welcomes_once_by_email_and_in_the_inbox(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool, name="Ada")
    await eventually(lambda: len(outbox(d)) == 1, what="welcome e-mail")
    mail = outbox(d)[0]
    assert mail["To"] == f"{user_id}@example.com"
    assert mail.get_content_type() == "multipart/alternative"
    assert "Ada" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # one-click unsubscribe on a signed gateway link
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/v1/unsubscribe/" in mail["List-Unsubscribe"]
    await until(
        pool,
        "SELECT inbox_at IS NOT NULL FROM notifications WHERE user_id = $1",
        user_id,
        what="welcome in the inbox",
    )
    # the product sends the sign-up again (an e-mail change): no second welcome
    await publish(producer, UserSignedUp(user_id=user_id, email="new@example.com", name="Ada"))
    await until(
        pool,
        "SELECT email = 'new@example.com' FROM users WHERE user_id = $1",
        user_id,
        what="e-mail updated",
    )
    await until(
        pool,
        "SELECT address = 'new@example.com' FROM channel_endpoints "
        "WHERE user_id = $1 AND type = 'email'",
        user_id,
        what="e-mail endpoint follows the user",
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", user_id) == 1
    )


# -- webhooks, retries, history ----------------------------------------------------


async def test_webhook_retry_keeps_its_idempotency_key_and_history_records_it(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        endpoint = await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        receiver.script("/hook", Reply(503), Reply(429, headers={"retry-after": "0"}))
        await publish(producer, request(user_id, title="Interview", body="Tuesday 10:00"))
        await eventually(lambda: len(receiver.to("/hook")) == 3, what="third attempt")
        await until(
            pool,
            "SELECT status = 'delivered' FROM deliveries WHERE endpoint_id = $1",
            endpoint.id,
            what="delivered",
        )
    calls = receiver.to("/hook")
    assert len({c.headers["webhook-id"] for c in calls}) == 1
    assert endpoint.secret is not None
    payload = Webhook(endpoint.secret).verify(calls[-1].body, calls[-1].headers)
    assert payload["data"]["title"] == "Interview"
    row = await pool.fetchrow("SELECT * FROM deliveries WHERE endpoint_id = $1", endpoint.id)
    assert row["attempts"] == 3
    assert row["response_status"] == 204
    assert row["first_attempt_at"] <= row["delivered_at"]


async def test_permanent_failures_disable_the_endpoint_and_tell_the_owner(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()  # disable_after_failures=2
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        endpoint = await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        receiver.script("/hook", Reply(400), Reply(400))
        await publish(producer, request(user_id, title="one"))
        await publish(producer, request(user_id, title="two"))
        await until(
            pool,
            "SELECT NOT enabled FROM channel_endpoints WHERE id = $1",
            endpoint.id,
            what="endpoint disabled",
        )
        await until(
            pool,
            "SELECT inbox_at IS NOT NULL FROM notifications "
            "WHERE user_id = $1 AND type = 'channel_disabled'",
            user_id,
            what="owner told in-app",
        )
        # nothing more goes to a disabled endpoint
        await publish(producer, request(user_id, title="three"))
        await until(
            pool,
            "SELECT count(*) = 3 FROM notifications WHERE user_id = $1 AND type = 'note'",
            user_id,
            what="third notification recorded",
        )
        assert len(receiver.to("/hook")) == 2
    failed = await deliveries(pool, user_id, "webhook")
    assert [r["status"] for r in failed] == ["failed", "failed"]
    assert all(r["attempts"] == 1 for r in failed)  # a 400 is never retried


async def test_a_chat_endpoint_whose_host_left_the_list_fails_for_good_unsent(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """Stored while the operator listed its host; the dispatcher now runs with Slack's
    own hosts only and does not send there, whatever the stored URL says."""
    await dispatcher(slack_webhook_hosts=["hooks.slack.com"])
    user_id = await sign_up(producer, pool)
    async with Receiver("slack") as slack:
        await add_endpoint(pool, user_id, "slack", url=f"{slack.url}/services/T/B/X")
        await publish(producer, request(user_id))
        await until(
            pool,
            "SELECT true FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
            "WHERE n.user_id = $1 AND d.channel = 'slack' AND d.status = 'failed'",
            user_id,
            what="slack delivery failed",
        )
        assert slack.requests == []
    [failed] = await deliveries(pool, user_id, "slack")
    assert failed["attempts"] == 1  # permanent: never retried
    assert "127.0.0.1 is not a slack webhook host" in failed["last_error"]


async def test_gone_endpoint_is_disabled_at_once(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        endpoint = await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        receiver.script("/hook", Reply(410))
        await publish(producer, request(user_id))
        await until(
            pool,
            "SELECT NOT enabled FROM channel_endpoints WHERE id = $1",
            endpoint.id,
            what="endpoint disabled after one 410",
        )
    reason = await pool.fetchval(
        "SELECT disabled_reason FROM channel_endpoints WHERE id = $1", endpoint.id
    )
    assert "410" in reason


async def test_a_request_for_one_endpoint_reaches_only_that_one(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """A test send to one of two webhooks (``endpoint_ids``) leaves the other alone."""
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as first, Receiver("webhook") as second:
        chosen = await add_endpoint(pool, user_id, "webhook", url=f"{first.url}/hook")
        await add_endpoint(pool, user_id, "webhook", url=f"{second.url}/hook")
        await publish(producer, request(user_id, title="Just one", endpoint_ids=[chosen.id]))
        await publish(producer, request(user_id, title="Both"))
        await eventually(lambda: len(second.requests) == 1, what="the one for both")
        await eventually(lambda: len(first.requests) == 2, what="both on the chosen one")
    assert [r.json()["data"]["title"] for r in second.requests] == ["Both"]
    assert sorted(r.json()["data"]["title"] for r in first.requests) == ["Both", "Just one"]


async def test_unconfigured_channel_is_recorded_as_skipped(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()  # no HERALD_TELEGRAM_BOT_TOKEN
    user_id = await sign_up(producer, pool)
    await add_endpoint(pool, user_id, "telegram", chat_id="42")
    await publish(producer, request(user_id))
    await until(
        pool,
        "SELECT status = 'skipped' FROM deliveries d JOIN notifications n "
        "ON n.id = d.notification_id WHERE n.user_id = $1 AND d.channel = 'telegram'",
        user_id,
        what="telegram delivery skipped",
    )


# -- de-duplication ---------------------------------------------------------------


async def test_identical_content_is_sent_once_and_changed_content_again(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        for title in ("Same", "Same", "Changed"):
            await publish(producer, request(user_id, title=title, dedup_key="weekly-report"))
        await eventually(lambda: len(receiver.to("/hook")) == 2, what="two deliveries")
        await quiescent(d.bus, also=[sending(pool, user_id)])  # a third would have come
        titles = [r.json()["data"]["title"] for r in receiver.to("/hook")]
    assert sorted(titles) == ["Changed", "Same"]


async def test_aggressive_strategy_sends_once_per_subject(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher(dedup_strategies={"promo": "aggressive"})
    user_id = await sign_up(producer, pool)
    for title in ("First", "Different words"):
        await publish(producer, request(user_id, type="promo", title=title, dedup_key="spring"))
    await publish(producer, request(user_id, type="promo", title="Other", dedup_key="autumn"))
    await until(
        pool,
        "SELECT count(*) = 2 FROM notifications WHERE user_id = $1 AND type = 'promo'",
        user_id,
        what="two promos recorded",
    )
    await until(
        pool,
        "SELECT count(*) FROM dedup_marks WHERE user_id = $1 AND type = 'promo'",
        user_id,
        what="marks",
    )
    subjects = await pool.fetch(
        "SELECT subject FROM notifications WHERE user_id = $1 AND type = 'promo'", user_id
    )
    assert sorted(r["subject"] for r in subjects) == ["autumn", "spring"]


# -- preferences, quiet hours, matches and digests ---------------------------------


async def test_quiet_hours_hold_normal_messages_but_not_urgent_ones(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool, timezone="Europe/Berlin")
    # quiet hours around the user's present moment, in their zone
    local = datetime.now(ZoneInfo("Europe/Berlin"))
    start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    await set_prefs(pool, user_id, quiet_hours_start=start, quiet_hours_end=end)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        await publish(producer, request(user_id, title="Normal"))
        await publish(producer, request(user_id, title="Urgent", priority="urgent"))
        await eventually(lambda: len(receiver.to("/hook")) == 1, what="the urgent one")
        assert receiver.to("/hook")[0].json()["data"]["title"] == "Urgent"
        held = await pool.fetchrow(
            """SELECT d.status, d.not_before FROM deliveries d JOIN notifications n
               ON n.id = d.notification_id WHERE n.title = 'Normal' AND d.channel = 'webhook'
               AND n.user_id = $1""",
            user_id,
        )
        assert held["status"] == "held"
        assert held["not_before"].astimezone(ZoneInfo("Europe/Berlin")).time() == end
        # the quiet hours end: the releaser sends it
        await pool.execute(
            "UPDATE deliveries SET not_before = now() WHERE status = 'held' AND channel = 'webhook'"
        )
        await eventually(lambda: len(receiver.to("/hook")) == 2, what="released after quiet hours")


async def test_matches_follow_preferences_and_score_routes(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        routes = [
            {"min_score": 0.9, "channels": ["webhook"]},
            {"min_score": 0.75, "channels": [], "digest": True},
            {"min_score": 0.0, "channels": ["inapp"]},
        ]
        await set_prefs(pool, user_id, score_routes=json.dumps(routes), min_match_score=0.5)
        for job_id, score in (("j-high", 0.95), ("j-mid", 0.8), ("j-low", 0.6), ("j-none", 0.3)):
            await publish(producer, match(user_id, f"{user_id}-{job_id}", score))
        await eventually(lambda: len(receiver.to("/hook")) == 1, what="the high match")
        body = receiver.to("/hook")[0].json()["data"]
        assert "Backend Engineer" in body["title"]
        await until(
            pool,
            "SELECT count(*) = 1 FROM digest_items WHERE user_id = $1",
            user_id,
            what="the middle match held for the digest",
        )
        await until(
            pool,
            "SELECT count(*) = 1 FROM notifications WHERE user_id = $1 "
            "AND job_id = $2 AND inbox_at IS NOT NULL",
            user_id,
            f"{user_id}-j-low",
            what="the low match in the inbox only",
        )
    # below the minimum score: nothing at all
    assert not await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE job_id = $1", f"{user_id}-j-none"
    )


async def test_digest_leaves_out_closed_jobs_and_mails_the_rest(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    await set_prefs(pool, user_id, digest_frequency="daily")
    await eventually(lambda: len(outbox(d)) == 1, what="welcome e-mail")
    for job_id, title in (("a", "Data Analyst"), ("b", "Site Reliability Engineer")):
        await publish(producer, match(user_id, f"{user_id}-{job_id}", title=title))
    await until(
        pool,
        "SELECT count(*) = 2 FROM digest_items WHERE user_id = $1",
        user_id,
        what="two matches held",
    )
    await close_job(producer, pool, f"{user_id}-b")
    now = datetime.now(UTC)
    await publish(
        producer,
        DigestDue(
            user_id=user_id,
            frequency="daily",
            window_start=now - timedelta(days=1),
            window_end=now + timedelta(seconds=1),
        ),
    )
    await eventually(lambda: len(outbox(d)) == 2, what="digest e-mail")
    digest = next(m for m in outbox(d) if "Data Analyst" in m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    text = digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Site Reliability Engineer" not in text
    assert await pool.fetchval(
        "SELECT bool_and(digested_at IS NOT NULL) FROM digest_items WHERE user_id = $1", user_id
    )


async def test_application_update_is_worded_and_reminders_stop_when_withdrawn(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    job_id = f"{user_id}-job"
    await publish(producer, job_posted(job_id, title="Product Designer", company="Lumen"))
    await until(pool, "SELECT true FROM dispatcher_jobs WHERE job_id = $1", job_id, what="job")
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        await publish(
            producer,
            ApplicationStatusChanged(
                application_id="app-1" + user_id,
                user_id=user_id,
                job_id=job_id,
                new_status="interview",  # type: ignore[arg-type]
                old_status="screening",  # type: ignore[arg-type]
            ),
        )
        await eventually(lambda: len(receiver.to("/hook")) == 1, what="status update")
        data = receiver.to("/hook")[0].json()["data"]
        assert "Product Designer" in data["title"] + data["body"]
        await publish(
            producer,
            ApplicationStatusChanged(
                application_id="app-1" + user_id,
                user_id=user_id,
                job_id=job_id,
                new_status="withdrawn",  # type: ignore[arg-type]
            ),
        )
        await eventually(lambda: len(receiver.to("/hook")) == 2, what="withdrawn update")
        await publish(
            producer,
            ReminderDue(
                reminder_id=f"r-{uuid.uuid4().hex[:6]}",
                user_id=user_id,
                kind="application_followup",
                subject_id="app-1" + user_id,
                due_at=datetime.now(UTC),
            ),
        )
        await quiescent(d.bus, also=[sending(pool, user_id)])
        assert len(receiver.to("/hook")) == 2  # no reminder about a withdrawn application


async def test_meeting_reminder_carries_a_calendar_invite(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher()
    user_id = await sign_up(producer, pool)
    await eventually(lambda: len(outbox(d)) == 1, what="welcome e-mail")
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    await publish(
        producer,
        MeetingScheduled(
            meeting_id=f"meet-{user_id}",
            user_id=user_id,
            title="Interview with Lumen",
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            join_url="https://meet.example.com/abc",  # type: ignore[arg-type]
        ),
    )
    await publish(
        producer,
        ReminderDue(
            reminder_id=f"r-{user_id}",
            user_id=user_id,
            kind="meeting_1h",
            subject_id=f"meet-{user_id}",
            due_at=starts - timedelta(hours=1),
        ),
    )
    await eventually(lambda: len(outbox(d)) == 2, what="reminder e-mail")
    reminder = next(m for m in outbox(d) if "Interview with Lumen" in str(m["Subject"]))
    invite = next(p for p in reminder.walk() if p.get_content_type() == "text/calendar")
    ics = invite.get_payload(decode=True)
    assert isinstance(ics, bytes)
    assert b"BEGIN:VEVENT" in ics
    assert b"https://meet.example.com/abc" in ics


# -- rate limits and priorities --------------------------------------------------


async def test_rate_limited_endpoint_gets_everything_spaced_out(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    await dispatcher()
    user_id = await sign_up(producer, pool)
    async with Receiver("slack") as slack:
        await add_endpoint(pool, user_id, "slack", url=f"{slack.url}/services/T/B/X")
        for n in range(4):
            await publish(producer, request(user_id, title=f"Message {n}"))
        # Slack allows one message a second per webhook: excess waits, nothing dropped
        await eventually(lambda: len(slack.requests) == 4, timeout=20, what="all four")
    times = sorted(r.at for r in slack.requests)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 0.9 for g in gaps), gaps


async def test_urgent_is_delivered_within_a_second_behind_ten_thousand_low(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    first = await dispatcher(recipient_rate_per_minute=1_000_000)
    user_id = await sign_up(producer, pool)
    backlog = 10_000
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        # the backlog is queued while no dispatcher consumes (the queues stay)
        await first.bus.stop(drain_timeout=2)
        low = [
            publish(
                producer, request(user_id, title=f"Low {n}", priority="low", channels=["webhook"])
            )
            for n in range(backlog)
        ]
        for start in range(0, backlog, 500):
            await asyncio.gather(*low[start : start + 500])
        await dispatcher(recipient_rate_per_minute=1_000_000)
        await eventually(lambda: len(receiver.requests) >= 100, what="the backlog under way")
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        before = len(receiver.requests)
        await publish(
            producer, request(user_id, title="Urgent", priority="urgent", channels=["webhook"])
        )

        def urgent() -> list[Any]:
            return [r for r in receiver.requests if r.json()["data"]["title"] == "Urgent"]

        try:
            await eventually(lambda: bool(urgent()), timeout=10, what="the urgent message")
            # low ones that still went first: those already taken from the queue
            ahead = sum(1 for r in receiver.requests[before:] if r.at < urgent()[0].at)
            waiting = backlog - before
        finally:
            # the backlog's rows would otherwise wait for a sweeper in later tests
            await pool.execute("DELETE FROM users WHERE user_id = $1", user_id)
    assert urgent()[0].at - sent_at < 1.0
    # it overtook the queue: most of what was still waiting went after it
    assert waiting > backlog // 2, waiting
    assert ahead < waiting // 2, (ahead, waiting)


async def test_a_pending_delivery_whose_message_was_lost_is_swept_and_sent(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    d = await dispatcher(delivery_retry_delays=[2.0, 4.0])
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        # a receiver that is down: the first try fails and is retried through the bus
        receiver.script("/hook", Reply(503))
        await publish(producer, request(user_id, title="Lost once"))
        await eventually(lambda: len(receiver.to("/hook")) >= 1, what="first attempt")
        # ... and the retry message is lost (purged, as a broker losing it would), once
        # the dispatcher has put it there
        retry_queues = [q for q in d.bus.queues if ".deliveries.retry." in q]

        async def retry_lost() -> bool:
            purged = [await purge(d.settings, q) for q in retry_queues]
            return sum(purged) >= 1

        await eventually(retry_lost, timeout=1.5, what="the retry message to purge")
        await asyncio.sleep(2.5)  # a wait for a time: past the 2 s retry step
        await quiescent(d.bus, also=[sending(pool, user_id)])  # and nothing came back
        assert len(receiver.to("/hook")) == 1
        assert await sweep_lost(pool, d.bus, after=0.0) >= 1
        await eventually(lambda: len(receiver.to("/hook")) == 2, what="the swept retry")

    async def recorded() -> bool:
        row = (await deliveries(pool, user_id, "webhook"))[0]
        return bool(row["status"] == "delivered")

    # the outcome is written once the receiver has answered
    await eventually(recorded, what="the delivery recorded")
    row = (await deliveries(pool, user_id, "webhook"))[0]
    assert row["attempts"] == 2


async def purge(settings: Any, queue: str) -> int:
    """Empty ``queue``; how many messages it held."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    try:
        channel = await connection.channel()
        purged = await (await channel.get_queue(queue, ensure=False)).purge()
        return int(purged.message_count or 0)
    finally:
        await connection.close()


async def test_urgent_is_not_held_up_by_slow_sends_to_other_endpoints(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """Every delivery slot busy with a receiver that takes seconds to answer: an
    urgent message to another endpoint still goes at once."""
    await dispatcher(recipient_rate_per_minute=1_000_000, http_timeout=10.0)
    slow_user = await sign_up(producer, pool)
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as slow, Receiver("webhook") as fast:
        slow.script("/hook", *[Reply(204, delay=4.0) for _ in range(60)])
        await add_endpoint(pool, slow_user, "webhook", url=f"{slow.url}/hook")
        await add_endpoint(pool, user_id, "webhook", url=f"{fast.url}/hook")
        for n in range(40):  # more than the 32 delivery slots
            await publish(producer, request(slow_user, title=f"Slow {n}", channels=["webhook"]))
        await eventually(lambda: len(slow.requests) >= 32, what="every slot busy")
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await publish(
            producer, request(user_id, title="Urgent", priority="urgent", channels=["webhook"])
        )
        await eventually(lambda: len(fast.requests) == 1, timeout=10, what="the urgent message")
        assert fast.requests[0].at - sent_at < 1.0


async def test_slow_endpoints_filling_every_inline_slot_do_not_hold_up_others(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """Intake waits only a moment for an inline slot: when a slow receiver keeps them
    all, new deliveries go through the delivery queue and reach a healthy endpoint
    at once, and the slow one still gets everything."""
    await dispatcher(recipient_rate_per_minute=1_000_000, http_timeout=10.0, inline_deliveries=4)
    slow_user = await sign_up(producer, pool)
    user_id = await sign_up(producer, pool)
    async with Receiver("webhook") as slow, Receiver("webhook") as fast:
        slow.script("/hook", *[Reply(204, delay=3.0) for _ in range(12)])
        await add_endpoint(pool, slow_user, "webhook", url=f"{slow.url}/hook")
        await add_endpoint(pool, user_id, "webhook", url=f"{fast.url}/hook")
        for n in range(12):
            await publish(producer, request(slow_user, title=f"Slow {n}", channels=["webhook"]))
        await eventually(lambda: len(slow.requests) >= 4, what="every inline slot busy")
        sent_at = asyncio.get_running_loop().time()
        await publish(producer, request(user_id, title="Normal", channels=["webhook"]))
        await eventually(lambda: len(fast.requests) == 1, timeout=10, what="the other message")
        assert fast.requests[0].at - sent_at < 1.0
        await eventually(lambda: len(slow.requests) == 12, timeout=30, what="every slow one")


async def test_a_redelivered_match_finishes_what_it_planned_even_if_the_job_closed_since(
    dispatcher: Start, producer: Bus, pool: asyncpg.Pool
) -> None:
    """The first pass committed its delivery but its publish was lost; by the time
    the event comes again the job has closed. The plan made then still goes out."""
    await dispatcher()
    user_id = await sign_up(producer, pool)
    job_id = f"{user_id}-job"
    async with Receiver("webhook") as receiver:
        await add_endpoint(pool, user_id, "webhook", url=f"{receiver.url}/hook")
        receiver.script("/hook", Reply(400))  # first attempt fails for good...
        event = await publish(producer, match(user_id, job_id))
        await until(
            pool,
            "SELECT status = 'failed' FROM deliveries WHERE channel = 'webhook' AND "
            "notification_id IN (SELECT id FROM notifications WHERE user_id = $1)",
            user_id,
            what="first attempt recorded",
        )
        # ...which we turn into "recorded but never sent", then close the job
        await pool.execute(
            """UPDATE deliveries SET status = 'pending', attempts = 0 WHERE channel = 'webhook'
               AND notification_id IN (SELECT id FROM notifications WHERE user_id = $1)""",
            user_id,
        )
        await close_job(producer, pool, job_id)
        await producer.publish(event)  # the same event again
        await eventually(lambda: len(receiver.to("/hook")) == 2, what="the planned delivery")
