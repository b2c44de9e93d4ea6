"""What the scheduler hears: meetings, application status changes and erasure.

Every replica consumes these (they only write rows); what falls due is published
by the leader alone (``rounds.py``). An event older than what a row already holds
changes nothing, so a retried or reordered event never brings back an old time, and
one from before its user's erasure changes nothing either (``shared.erasure``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from shared.bus import Bus
from shared.db import Connection
from shared.erasure import erased_since, forget_in_queues, lock_user, record_erasure
from shared.errors import Ignore
from shared.events import (
    ApplicationStatusChanged,
    Event,
    MeetingCancelled,
    MeetingScheduled,
    UserDeleted,
)
from shared.settings import Settings

from . import agenda, reminders
from .reminders import APPLICATION, MEETING

log = structlog.get_logger("herald.scheduler")


@dataclass(frozen=True)
class SubjectDeps:
    pool: asyncpg.Pool
    bus: Bus
    settings: Settings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


async def on_meeting_changed(
    event: Event[MeetingScheduled] | Event[MeetingCancelled], deps: SubjectDeps
) -> None:
    m = event.data
    cancelled = isinstance(m, MeetingCancelled)
    now = deps.clock()
    async with deps.pool.acquire() as conn, conn.transaction():
        await _not_erased(conn, m.user_id, event.trusted_time)
        written = await agenda.upsert_meeting(
            conn,
            meeting_id=m.meeting_id,
            user_id=m.user_id,
            title=m.title,
            starts_at=m.starts_at,
            ends_at=m.ends_at,
            join_url=str(m.join_url) if m.join_url else None,
            cancelled=cancelled,
            as_of=event.time,
            now=now,
        )
        if not written:
            log.info("meeting_event_outdated", meeting_id=m.meeting_id)
            return
        planned = (
            [] if cancelled else reminders.for_meeting(m.meeting_id, m.user_id, m.starts_at, now)
        )
        await agenda.replan(conn, MEETING, m.meeting_id, planned)
    log.info(
        "meeting_recorded",
        meeting_id=m.meeting_id,
        cancelled=cancelled,
        reminders=[r.kind for r in planned],
    )


async def on_application_status_changed(
    event: Event[ApplicationStatusChanged], deps: SubjectDeps
) -> None:
    a = event.data
    async with deps.pool.acquire() as conn, conn.transaction():
        await _not_erased(conn, a.user_id, event.trusted_time)
        newest = await agenda.upsert_application(
            conn, a.application_id, a.user_id, a.new_status.value, event.time
        )
        if not newest:
            log.info("application_event_outdated", application_id=a.application_id)
            return
        planned = reminders.for_application(
            a.application_id,
            a.user_id,
            a.new_status.value,
            event.time,
            a.interview_at,
            deps.clock(),
            follow_up_days=deps.settings.follow_up_days,
        )
        # any change restarts the follow-up clock and replaces interview reminders
        await agenda.replan(conn, APPLICATION, a.application_id, planned)
    log.info(
        "application_recorded",
        application_id=a.application_id,
        reminders=[r.kind for r in planned],
    )


async def on_user_deleted(event: Event[UserDeleted], deps: SubjectDeps) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        await lock_user(conn, event.data.user_id)
        await record_erasure(conn, event.data.user_id, event.time)
        await agenda.erase_user(conn, event.data.user_id)
    swept = await forget_in_queues(deps.pool, deps.bus, event.data.user_id)
    log.info("user_erased", user_id=event.data.user_id, messages_dropped=swept)


async def _not_erased(conn: Connection, user_id: str, event_time: datetime) -> None:
    """An event from before the user's erasure, handled after it, must not store
    their meetings or applications again."""
    await lock_user(conn, user_id)
    if await erased_since(conn, user_id, event_time):
        raise Ignore(f"user {user_id!r} was erased after this event")
