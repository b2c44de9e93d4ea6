"""The scheduler against the real broker and database, its clock injected: each round
runs at the moment a test names, so a day of reminders or a month of digests takes
seconds. What the bus carries is what a consumer would see."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import asyncpg
import pytest

from services.scheduler.app import Scheduler, build
from services.scheduler.leadership import Lease, NotLeader
from shared.bus import PARKED_AT, Bus
from shared.events import (
    ApplicationStatusChanged,
    Event,
    MeetingCancelled,
    MeetingScheduled,
    Payload,
    UserDeleted,
    derived_id,
    new_event,
)
from shared.runner import Runtime
from shared.settings import Settings
from tests.support import eventually, queue_depth, quiescent

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@dataclass
class Harness:
    scheduler: Scheduler
    heard: list[Event[Any]]
    producer: Bus
    pool: asyncpg.Pool

    @property
    def rounds(self) -> Any:
        return self.scheduler.rounds

    def of(self, event_type: str, **data: object) -> list[Event[Any]]:
        return [
            e
            for e in self.heard
            if e.type == event_type and all(getattr(e.data, k) == v for k, v in data.items())
        ]

    async def publish(self, data: Payload, *, time: datetime | None = None) -> Event[Any]:
        event = new_event(data, source="tests", time=time)
        await self.producer.publish(event)
        return event

    async def settled(self, what: str, query: str, *args: object) -> None:
        await eventually(lambda: self.pool.fetchval(query, *args), what=what)

    async def heard_all(self, published: list[Event[Any]]) -> None:
        ids = {e.id for e in published}
        await eventually(
            lambda: ids <= {e.id for e in self.heard}, what=f"{len(ids)} events on the bus"
        )


@pytest.fixture
async def harness(
    settings: Settings, pool: asyncpg.Pool, bus_factory: Callable[..., Bus]
) -> Callable[..., Awaitable[Harness]]:
    """A scheduler replica holding the lease (its loops not started: the test runs
    its rounds), and a listener that hears every event of the namespace."""
    heard: list[Event[Any]] = []

    async def collect(event: Event[Any]) -> None:
        heard.append(event)

    listener = bus_factory("listener")
    listener.subscribe("heard", {"#": collect})
    await listener.start(wait=10)
    producer = bus_factory("producer")
    await producer.start(wait=10)

    async def start(**overrides: Any) -> Harness:
        s = settings.model_copy(update=overrides)
        bus = bus_factory("scheduler", **overrides)
        scheduler = build(Runtime("scheduler", s, bus.metrics, bus, pool))
        scheduler.rounds.digest_sync_every = 0.0
        await bus.start(wait=10)
        assert await scheduler.lease.hold()
        return Harness(scheduler, heard, producer, pool)

    return start


def meeting(user_id: str, starts_at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "meeting_id": f"m-{uuid.uuid4().hex[:8]}",
        "user_id": user_id,
        "title": "Interview with Acme",
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=1),
        "join_url": "https://meet.example.com/abc",
    } | fields


# -- ticks and leadership -----------------------------------------------------------


async def test_each_slot_is_published_once_with_a_deterministic_id(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    slot = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    published = await h.rounds.ticks(slot + timedelta(seconds=0.2))
    # the replica stops; one started within the minute finds the slot taken
    await h.scheduler.lease.release()
    restarted = await harness()
    published += await restarted.rounds.ticks(slot + timedelta(seconds=5))
    await h.heard_all(published)
    minute = h.of("tick.minute")
    assert [(t.data.slot, t.id) for t in minute] == [
        (slot, derived_id("tick", "minute", slot.isoformat()))
    ]
    assert h.of("tick.hourly") == []  # 10:15 is no hour
    registry = h.rounds.bus.metrics.registry
    sample = {"service": "scheduler", "schedule": "minute"}
    assert registry.get_sample_value("herald_scheduler_ticks_published_total", sample) == 1
    # the heartbeat the no-tick alert watches: when it was published (wall clock)
    ticked = registry.get_sample_value("herald_scheduler_last_tick_timestamp_seconds", sample)
    assert ticked is not None
    assert abs(time.time() - ticked) < 60


async def test_missed_slots_after_downtime_are_caught_up_once(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness(schedules={"minute": None})
    await h.rounds.ticks(datetime(2026, 11, 23, 6, 0, 1, tzinfo=UTC))
    # down from 06:00 to 10:20: four hourly slots missed, one tick makes up for them
    back = datetime(2026, 11, 23, 10, 20, tzinfo=UTC)
    published = await h.rounds.ticks(back)
    published += await h.rounds.ticks(back + timedelta(seconds=30))
    await h.heard_all(published)
    assert [t.data.slot.hour for t in h.of("tick.hourly")] == [6, 10]
    assert [t.data.slot.day for t in h.of("tick.daily")] == [23]  # 09:00 today, once


async def test_only_the_lease_holder_publishes_and_a_dead_holder_is_replaced(
    harness: Callable[..., Awaitable[Harness]], pool: asyncpg.Pool, settings: Settings
) -> None:
    h = await harness(scheduler_lease_seconds=1.0)
    first = h.scheduler.lease
    second = Lease(pool, settings.namespace, "other-replica", 1.0)
    assert not await second.hold()
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(NotLeader):
            await second.fence(conn)
    # the holder stops renewing (killed): the other takes over once the lease ran out
    await eventually(second.hold, timeout=3, what="the lease to change hands")
    assert second.term == (first.term or 0) + 1
    with pytest.raises(NotLeader):
        await h.rounds.ticks(datetime(2026, 11, 23, 10, 15, tzinfo=UTC))
    assert not await first.hold()


# -- meetings and reminders ---------------------------------------------------------


async def test_meeting_reminders_come_24h_and_1h_before_once_and_its_states_follow(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    m = meeting("u-meet", starts)
    await h.publish(MeetingScheduled(**m))
    await h.settled(
        "meeting stored",
        "SELECT true FROM scheduler_meetings WHERE meeting_id = $1",
        m["meeting_id"],
    )

    published: list[Event[Any]] = []
    for moment in (
        starts - timedelta(hours=25),  # nothing yet
        starts - timedelta(hours=24),
        starts - timedelta(hours=23),  # nothing new
        starts - timedelta(hours=1),
        starts,
        starts + timedelta(minutes=30),
        starts + timedelta(hours=1),
        starts + timedelta(hours=2),
    ):
        published += await h.rounds.meetings(moment)
        published += await h.rounds.reminders(moment)
    await h.heard_all(published)

    reminders = h.of("reminder.due", subject_id=m["meeting_id"])
    assert [(r.data.kind, r.data.due_at) for r in reminders] == [
        ("meeting_24h", starts - timedelta(hours=24)),
        ("meeting_1h", starts - timedelta(hours=1)),
    ]
    assert [
        e.type
        for e in h.heard
        if e.type.startswith("meeting.") and e.data.meeting_id == m["meeting_id"]
    ] == [
        "meeting.scheduled",
        "meeting.started",
        "meeting.completed",
    ]
    state = await h.pool.fetchval(
        "SELECT state FROM scheduler_meetings WHERE meeting_id = $1", m["meeting_id"]
    )
    assert state == "completed"


async def test_a_moved_meeting_is_reminded_at_its_new_time_and_a_cancelled_one_not_at_all(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    now = datetime.now(UTC).replace(microsecond=0)
    starts, moved = now + timedelta(days=3), now + timedelta(days=4)
    m = meeting("u-move", starts)
    c = meeting("u-move", starts)
    await h.publish(MeetingScheduled(**m), time=now)
    await h.publish(MeetingScheduled(**c), time=now)
    await h.publish(
        MeetingScheduled(**(m | {"starts_at": moved, "ends_at": moved + timedelta(hours=1)})),
        time=now + timedelta(seconds=1),
    )
    await h.publish(MeetingCancelled(**c), time=now + timedelta(seconds=1))
    await h.settled(
        "move and cancel stored",
        """SELECT count(*) = 2 FROM scheduler_meetings WHERE meeting_id = ANY($1::text[])
           AND as_of > $2""",
        [m["meeting_id"], c["meeting_id"]],
        now,
    )
    # the original move arriving again late (a retry) changes nothing
    await h.publish(MeetingScheduled(**m), time=now)

    published: list[Event[Any]] = []
    for hours in range(0, 24 * 5, 1):
        moment = now + timedelta(hours=hours)
        published += await h.rounds.meetings(moment)
        published += await h.rounds.reminders(moment)
    await h.heard_all(published)
    assert [r.data.due_at for r in h.of("reminder.due", subject_id=m["meeting_id"])] == [
        moved - timedelta(hours=24),
        moved - timedelta(hours=1),
    ]
    assert h.of("reminder.due", subject_id=c["meeting_id"]) == []
    assert h.of("meeting.started", meeting_id=c["meeting_id"]) == []
    assert [e.data.starts_at for e in h.of("meeting.started", meeting_id=m["meeting_id"])] == [
        moved
    ]


async def test_applications_get_a_follow_up_after_quiet_days_and_interview_reminders(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    # the events are dated up to a day ahead to stand for time passing: an allowance
    # wide enough that they are taken at their word
    h = await harness(follow_up_days=5, event_time_allowance_seconds=2 * 86400)
    now = datetime.now(UTC).replace(microsecond=0)
    quiet, busy = f"a-{uuid.uuid4().hex[:6]}", f"a-{uuid.uuid4().hex[:6]}"
    interview = now + timedelta(days=2)
    common = {"user_id": "u-apps", "job_id": "j1"}
    await h.publish(
        ApplicationStatusChanged(application_id=quiet, new_status="applied", **common), time=now
    )
    await h.publish(
        ApplicationStatusChanged(application_id=busy, new_status="applied", **common), time=now
    )
    # the busy one moves on to an interview after a day
    await h.publish(
        ApplicationStatusChanged(
            application_id=busy, new_status="interview", interview_at=interview, **common
        ),
        time=now + timedelta(days=1),
    )
    await h.settled(
        "applications stored",
        "SELECT count(*) = 2 FROM scheduler_applications WHERE application_id = ANY($1::text[]) AND (status = 'applied' OR status = 'interview')",
        [quiet, busy],
    )
    await h.settled(
        "interview recorded",
        "SELECT true FROM scheduler_applications WHERE application_id = $1 AND status = 'interview'",
        busy,
    )

    published: list[Event[Any]] = []
    for hours in range(0, 24 * 8, 1):
        published += await h.rounds.reminders(now + timedelta(hours=hours))
    await h.heard_all(published)
    assert [(r.data.kind, r.data.due_at) for r in h.of("reminder.due", subject_id=quiet)] == [
        ("follow_up", now + timedelta(days=5))
    ]
    assert [(r.data.kind, r.data.due_at) for r in h.of("reminder.due", subject_id=busy)] == [
        ("interview_24h", interview - timedelta(hours=24)),
        ("interview_1h", interview - timedelta(hours=1)),
        ("follow_up", now + timedelta(days=6)),  # five days after its last change
    ]


async def test_reminders_are_sent_once_across_a_restart_and_a_second_replica(
    harness: Callable[..., Awaitable[Harness]], pool: asyncpg.Pool, settings: Settings
) -> None:
    h = await harness()
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    m = meeting("u-once", starts)
    await h.publish(MeetingScheduled(**m))
    await h.settled(
        "meeting stored",
        "SELECT true FROM scheduled_reminders WHERE subject_id = $1",
        m["meeting_id"],
    )
    due = starts - timedelta(hours=24)
    published = await h.rounds.reminders(due)
    # the leader dies; its successor runs the same moment again
    await pool.execute(
        "UPDATE scheduler_leases SET expires_at = now() WHERE namespace = $1", settings.namespace
    )
    successor = await harness()
    published += await successor.rounds.reminders(due + timedelta(seconds=1))
    with pytest.raises(NotLeader):
        await h.rounds.reminders(due + timedelta(seconds=2))
    await h.heard_all(published)
    assert len(h.of("reminder.due", subject_id=m["meeting_id"])) == 1


# -- digests ------------------------------------------------------------------------


async def _digest_user(pool: asyncpg.Pool, timezone: str, frequency: str = "daily") -> str:
    user_id = f"d-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO users (user_id, email, timezone) VALUES ($1, $2, $3)",
        user_id,
        f"{user_id}@example.com",
        timezone,
    )
    await pool.execute(
        "INSERT INTO preferences (user_id, digest_frequency) VALUES ($1, $2)", user_id, frequency
    )
    return user_id


@pytest.mark.parametrize(
    ("start", "days"),
    [
        # New York changes on 8 March, Berlin on 29 March (spring), both around here:
        (datetime(2026, 3, 6, tzinfo=UTC), 4),
        (datetime(2026, 3, 27, tzinfo=UTC), 4),
        # and back: Berlin on 25 October, New York on 1 November
        (datetime(2026, 10, 23, tzinfo=UTC), 11),
    ],
)
async def test_digests_come_at_nine_local_on_both_sides_of_a_daylight_saving_change(
    harness: Callable[..., Awaitable[Harness]], pool: asyncpg.Pool, start: datetime, days: int
) -> None:
    h = await harness()
    berlin = await _digest_user(pool, "Europe/Berlin")
    new_york = await _digest_user(pool, "America/New_York")
    zones = {berlin: BERLIN, new_york: NEW_YORK}
    step = timedelta(minutes=20)
    published: list[Event[Any]] = []
    moment = start
    while moment < start + timedelta(days=days):
        for event in await h.rounds.digests(moment):
            if event.data.user_id in zones:
                # published in the round that followed 09:00 local, not before, not later
                assert event.data.window_end <= moment < event.data.window_end + step
                published.append(event)
        moment += step
    await h.heard_all(published)
    for user_id, zone in zones.items():
        digests = h.of("digest.due", user_id=user_id)
        ends = [d.data.window_end.astimezone(zone) for d in digests]
        assert [e.strftime("%H:%M") for e in ends] == ["09:00"] * len(ends)
        assert len({e.date() for e in ends}) == len(ends) >= days - 1
        # windows tile: each starts where the previous ended, 23, 24 or 25 hours long
        for before, after in itertools.pairwise(digests):
            assert after.data.window_start == before.data.window_end
        lengths = {d.data.window_end - d.data.window_start for d in digests[1:]}
        assert lengths <= {timedelta(hours=n) for n in (23, 24, 25)}
    crossed = {
        user_id: {
            d.data.window_end.astimezone(zones[user_id]).utcoffset()
            for d in h.of("digest.due", user_id=user_id)
        }
        for user_id in zones
    }
    assert any(len(offsets) == 2 for offsets in crossed.values())


async def test_a_digest_follows_preference_changes_and_catches_up_once(
    harness: Callable[..., Awaitable[Harness]], pool: asyncpg.Pool
) -> None:
    h = await harness()
    user = await _digest_user(pool, "Europe/Berlin", "weekly")
    monday = datetime(2026, 11, 23, 6, tzinfo=UTC)  # 07:00 in Berlin
    await h.rounds.digests(monday)
    # at 07:30 they ask for 08:00 local and daily instead
    await pool.execute(
        "UPDATE preferences SET digest_frequency = 'daily', digest_hour = 8 WHERE user_id = $1",
        user,
    )
    published = await h.rounds.digests(monday + timedelta(minutes=30))
    published += await h.rounds.digests(monday + timedelta(hours=1, seconds=5))
    # the scheduler is down for three days; back on Friday afternoon
    published += await h.rounds.digests(datetime(2026, 11, 27, 15, tzinfo=UTC))
    # they turn digests off
    await pool.execute(
        "UPDATE preferences SET digest_frequency = 'instant' WHERE user_id = $1", user
    )
    published += await h.rounds.digests(datetime(2026, 11, 28, 12, tzinfo=UTC))
    await h.heard_all(published)
    digests = [(d.data.window_start, d.data.window_end) for d in h.of("digest.due", user_id=user)]
    assert digests == [
        # the first window reaches back one week (the plan's period before the change)
        (datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 23, 7, tzinfo=UTC)),
        (datetime(2026, 11, 23, 7, tzinfo=UTC), datetime(2026, 11, 27, 7, tzinfo=UTC)),
    ]


# -- retention ----------------------------------------------------------------------


async def test_retention_purges_what_the_scheduler_owns_and_leaves_other_services_rows(
    harness: Callable[..., Awaitable[Harness]], pool: asyncpg.Pool, settings: Settings
) -> None:
    h = await harness(retention_days=90, parked_retention_days=30)
    now = datetime.now(UTC)
    user = await _digest_user(pool, "UTC", "instant")
    # the dispatcher's notifications and cancellation marks and the matcher's jobs are
    # their owners' to trim (and to close on expiry): old as they are, they stay
    old_notification, old_request = uuid.uuid4(), f"r-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        """INSERT INTO notifications (id, user_id, type, title, body, source_event_id, created_at)
           VALUES ($1, $2, 'test', 't', 'b', $3, $4)""",
        old_notification, user, str(old_notification), now - timedelta(days=120),
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO cancelled_requests (request_id, user_id, cancelled_at) VALUES ($1, $2, $3)",
        old_request,
        user,
        now - timedelta(days=120),
    )
    expired_job = f"j-{uuid.uuid4().hex[:6]}"
    await pool.execute(
        """INSERT INTO jobs (job_id, title, company, description, remote, job_type, url,
                             posted_at, expires_at, as_of)
           VALUES ($1, 'Engineer', 'Acme', '', true, 'full_time', 'https://acme.example',
                   $2, $3, $2)""",
        expired_job, now - timedelta(days=10), now - timedelta(hours=1),
    )  # fmt: skip
    old_reminder, recent_reminder = f"rem-{uuid.uuid4().hex[:8]}", f"rem-{uuid.uuid4().hex[:8]}"
    for reminder_id, age in ((old_reminder, 91), (recent_reminder, 89)):
        await pool.execute(
            """INSERT INTO scheduled_reminders (reminder_id, user_id, kind, subject_type,
                                                subject_id, due_at, status, settled_at)
               VALUES ($1, $2, 'follow_up', 'application', 'a-1', $3, 'sent', $3)""",
            reminder_id, user, now - timedelta(days=age),
        )  # fmt: skip
    gone, kept = f"u-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    for erased, age in ((gone, 91), (kept, 1)):
        await pool.execute(
            "INSERT INTO erased_users (user_id, erased_at) VALUES ($1, $2)",
            erased,
            now - timedelta(days=age),
        )
    parked = f"{settings.namespace}.scheduler.subjects.parked"
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        for age in (40, 31, 1):
            parked_at = (now - timedelta(days=age)).isoformat()
            await channel.default_exchange.publish(
                aio_pika.Message(f"{age}".encode(), headers={PARKED_AT: parked_at}),
                routing_key=parked,
            )
    await eventually(lambda: _depth(settings, parked, 3), what="three parked messages")

    await h.rounds.retention(now)

    reminders = await pool.fetch(
        "SELECT reminder_id FROM scheduled_reminders WHERE reminder_id = ANY($1::text[])",
        [old_reminder, recent_reminder],
    )
    assert [r["reminder_id"] for r in reminders] == [recent_reminder]
    tombstones = await pool.fetch(
        "SELECT user_id FROM erased_users WHERE user_id = ANY($1::text[])", [gone, kept]
    )
    assert [r["user_id"] for r in tombstones] == [kept]
    assert await queue_depth(settings.amqp_url.get_secret_value(), parked) == 1
    assert await pool.fetchval("SELECT true FROM notifications WHERE id = $1", old_notification)
    assert await pool.fetchval(
        "SELECT true FROM cancelled_requests WHERE request_id = $1", old_request
    )
    assert await pool.fetchval("SELECT closed_at IS NULL FROM jobs WHERE job_id = $1", expired_job)


async def _depth(settings: Settings, queue: str, expected: int) -> bool:
    return await queue_depth(settings.amqp_url.get_secret_value(), queue) == expected


async def test_erasure_removes_what_the_scheduler_keeps_about_a_user(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    starts = datetime.now(UTC) + timedelta(days=2)
    m = meeting("u-erase", starts)
    await h.publish(MeetingScheduled(**m))
    await h.settled(
        "reminders planned",
        "SELECT count(*) = 2 FROM scheduled_reminders WHERE user_id = 'u-erase'",
    )
    await h.publish(UserDeleted(user_id="u-erase"))
    await h.settled(
        "rows erased",
        """SELECT NOT EXISTS (SELECT 1 FROM scheduled_reminders WHERE user_id = 'u-erase')
              AND NOT EXISTS (SELECT 1 FROM scheduler_meetings WHERE user_id = 'u-erase')""",
    )
    # the same meeting published before the erasure, handled after it: ignored
    before = datetime.now(UTC) - timedelta(minutes=1)
    await h.publish(MeetingScheduled(**m), time=before)
    await quiescent(h.rounds.bus)
    assert not await h.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scheduler_meetings WHERE user_id = 'u-erase')"
    )
    due = await h.rounds.reminders(starts - timedelta(hours=1))
    assert [e for e in due if e.data.user_id == "u-erase"] == []
